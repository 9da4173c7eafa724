import { Check, Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique, type Relation } from 'typeorm';
import type { Target } from '../../contracts/index.js';
import { bigintAsNumber } from './column-transformers.js';
import { ModelVersionEntity } from './model-version.entity.js';

/** A built plan for one target of one version; the bytes live in S3 at plans/<sha256>.plan. */
@Entity({ name: 'plans' })
@Unique('uq_plans_version_target', ['modelVersionId', 'target'])
@Index('ix_plans_sha256', ['sha256'])
@Check('ck_plans_sha256', `sha256 ~ '^[0-9a-f]{64}$'`)
@Check('ck_plans_size', 'size >= 0')
export class PlanEntity {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @Column({ name: 'model_version_id', type: 'uuid' })
  modelVersionId: string;

  @ManyToOne(() => ModelVersionEntity, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'model_version_id', foreignKeyConstraintName: 'fk_plans_model_version' })
  modelVersion?: Relation<ModelVersionEntity>;

  @Column({ type: 'text' })
  target: Target;

  @Column({ name: 's3_key', type: 'text' })
  s3Key: string;

  @Column({ type: 'text' })
  sha256: string;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  size: number;

  @Column({ type: 'text' })
  precision: string;

  @Column({ type: 'boolean', default: false })
  tuned: boolean;

  @Column({ name: 'optimizer_version', type: 'text' })
  optimizerVersion: string;

  /** The plan header as written by the optimizer (format version, sm, precision, hashes). */
  @Column({ type: 'jsonb' })
  header: Record<string, unknown>;

  /** Numerical check against the ONNX reference, when one ran. */
  @Column({ type: 'jsonb', nullable: true })
  verification: Record<string, unknown> | null;

  @Column({ name: 'build_ms', type: 'integer', nullable: true })
  buildMs: number | null;

  /** Latency measured on a real GPU ({p50Ms, p99Ms, …}); null for cross builds. */
  @Column({ type: 'jsonb', nullable: true })
  profile: Record<string, unknown> | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
