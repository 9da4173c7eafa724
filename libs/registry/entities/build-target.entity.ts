import { Check, Column, Entity, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique, type Relation } from 'typeorm';
import type { Target } from '../../contracts/index.js';
import { BuildEntity } from './build.entity.js';

export const TARGET_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type TargetStatus = (typeof TARGET_STATUSES)[number];

/** The state of one target of one build, written by the worker running its job. */
@Entity({ name: 'build_targets' })
@Unique('uq_build_targets_build_target', ['buildId', 'target'])
@Check('ck_build_targets_status', `status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')`)
@Check('ck_build_targets_attempts', 'attempts >= 0')
@Check('ck_build_targets_progress', 'progress >= 0 AND progress <= 100')
export class BuildTargetEntity {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @Column({ name: 'build_id', type: 'uuid' })
  buildId: string;

  @ManyToOne(() => BuildEntity, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'build_id', foreignKeyConstraintName: 'fk_build_targets_build' })
  build?: Relation<BuildEntity>;

  @Column({ type: 'text' })
  target: Target;

  @Column({ type: 'text', default: 'queued' })
  status: TargetStatus;

  /** Attempts started so far (BullMQ attemptsMade + 1 of the latest). */
  @Column({ type: 'integer', default: 0 })
  attempts: number;

  /** 0-100. */
  @Column({ type: 'real', default: 0 })
  progress: number;

  @Column({ type: 'text', nullable: true })
  stage: string | null;

  @Column({ name: 'worker_id', type: 'text', nullable: true })
  workerId: string | null;

  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt: Date | null;

  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true })
  finishedAt: Date | null;

  @Column({ name: 'error_code', type: 'text', nullable: true })
  errorCode: string | null;

  @Column({ name: 'error_message', type: 'text', nullable: true })
  errorMessage: string | null;

  /** Satisfied from the build cache (a plan of identical inputs): no job ran. */
  @Column({ name: 'cache_hit', type: 'boolean', default: false })
  cacheHit: boolean;
}
