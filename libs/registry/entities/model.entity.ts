import { Check, Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, Unique } from 'typeorm';

/** A named model; its versions are numbered 1, 2, 3 … without gaps. */
@Entity({ name: 'models' })
@Unique('uq_models_name', ['name'])
@Check('ck_models_last_version', 'last_version >= 0')
export class ModelEntity {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @Column({ type: 'text' })
  name: string;

  /** The newest version number handed out (pushes take theirs from it, under its row lock). */
  @Column({ name: 'last_version', type: 'integer', default: 0 })
  lastVersion: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
