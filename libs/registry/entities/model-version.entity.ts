import { Check, Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique, type Relation } from 'typeorm';
import type { BuildSpec } from '../../contracts/index.js';
import { BuildEntity } from './build.entity.js';
import { bigintAsNumber } from './column-transformers.js';
import { ModelEntity } from './model.entity.js';

export const VERSION_STATUSES = ['building', 'complete', 'partial', 'failed', 'cancelled'] as const;
export type VersionStatus = (typeof VERSION_STATUSES)[number];

/** Why a version is not complete: one entry per failed target. */
export interface VersionError {
  failedTargets: { target: string; code: string | null; message: string | null }[];
}

/**
 * One pushed ONNX model + build spec. Repositories work with the id columns; the
 * relations exist so the metadata describes the foreign keys the migration made.
 * Relation<> keeps emitDecoratorMetadata from touching the (cyclic) ESM imports.
 */
@Entity({ name: 'model_versions' })
@Unique('uq_model_versions_model_version', ['modelId', 'version'])
@Index('ix_model_versions_model_sha256', ['modelSha256'])
@Index('ix_model_versions_sha256_spec_hash', ['modelSha256', 'specHash'])
@Check('ck_model_versions_version', 'version >= 1')
@Check('ck_model_versions_status', `status IN ('building', 'complete', 'partial', 'failed', 'cancelled')`)
@Check('ck_model_versions_model_sha256', `model_sha256 ~ '^[0-9a-f]{64}$'`)
@Check('ck_model_versions_model_size', 'model_size >= 0')
export class ModelVersionEntity {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @Column({ name: 'model_id', type: 'uuid' })
  modelId: string;

  @ManyToOne(() => ModelEntity, { onDelete: 'RESTRICT', nullable: false })
  @JoinColumn({ name: 'model_id', foreignKeyConstraintName: 'fk_model_versions_model' })
  model?: Relation<ModelEntity>;

  @Column({ type: 'integer' })
  version: number;

  @Column({ type: 'text', default: 'building' })
  status: VersionStatus;

  @Column({ name: 'model_sha256', type: 'text' })
  modelSha256: string;

  @Column({ name: 'model_key', type: 'text' })
  modelKey: string;

  @Column({ name: 'model_size', type: 'bigint', transformer: bigintAsNumber })
  modelSize: number;

  @Column({ type: 'jsonb' })
  spec: BuildSpec;

  @Column({ name: 'spec_hash', type: 'text' })
  specHash: string;

  @Column({ name: 'build_id', type: 'uuid', nullable: true })
  buildId: string | null;

  @ManyToOne(() => BuildEntity, { onDelete: 'SET NULL', nullable: true })
  @JoinColumn({ name: 'build_id', foreignKeyConstraintName: 'fk_model_versions_build' })
  build?: Relation<BuildEntity> | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ name: 'completed_at', type: 'timestamptz', nullable: true })
  completedAt: Date | null;

  @Column({ type: 'jsonb', nullable: true })
  error: VersionError | null;

  /** Provenance: who uploaded it, or the repository, ref and commit of the CI webhook that built it. */
  @Column({ type: 'jsonb', nullable: true })
  source: Record<string, unknown> | null;
}
