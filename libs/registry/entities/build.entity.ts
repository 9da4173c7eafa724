import { Check, Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, type Relation } from 'typeorm';
import type { BuildSpec, Target } from '../../contracts/index.js';
import { ModelVersionEntity } from './model-version.entity.js';

export const BUILD_STATUSES = ['queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled'] as const;
export type BuildStatus = (typeof BUILD_STATUSES)[number];

/** One run of the farm over a model version: a BullMQ flow with one child per target. */
@Entity({ name: 'builds' })
@Index('ix_builds_model_version_id', ['modelVersionId'])
@Check('ck_builds_status', `status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled')`)
@Check('ck_builds_targets', 'cardinality(targets) >= 1')
export class BuildEntity {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @Column({ name: 'model_version_id', type: 'uuid' })
  modelVersionId: string;

  @ManyToOne(() => ModelVersionEntity, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'model_version_id', foreignKeyConstraintName: 'fk_builds_model_version' })
  modelVersion?: Relation<ModelVersionEntity>;

  @Column({ type: 'text', default: 'queued' })
  status: BuildStatus;

  @Column({ type: 'jsonb' })
  spec: BuildSpec;

  @Column({ type: 'text', array: true })
  targets: Target[];

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt: Date | null;

  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true })
  finishedAt: Date | null;

  @Column({ type: 'text', nullable: true })
  error: string | null;
}
