/**
 * The GPU stage of a gpu-mode worker, as far as it runs without a GPU: the timing cache the
 * workers share through S3 (real s3rver, real optimizer CLI for the merge) and the GPU
 * commands' errors on a machine without a driver.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { GpuPlanStage, TimingCacheStore, tuningShapes } from '../../apps/worker/src/gpu-tuning/index.js';
import type { AppConfig } from '../../libs/config/index.js';
import { BuildError, OPTIMIZER_VERSION, buildPlan, mergeTimingCaches, profilePlanOnGpu, tunePlanOnGpu, verifyPlanOnGpu } from '../../libs/native/index.js';
import { ObjectStorage, StorageError, timingCacheKey, timingCachePrefix } from '../../libs/storage/index.js';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';

const HEADER = 'planforge-timing-cache 1';
const cacheText = (rows: [version: string, sm: number, signature: string, tactic: number, ms: number][]) =>
  `${HEADER}\n${rows.map((r) => `${r[0]}\t${r[1]}\t${r[2]}\t${r[3]}\t${r[4].toFixed(6)}`).join('\n')}\n`;

describe('gpu stage without a GPU', () => {
  let config: AppConfig;
  let storage: ObjectStorage;
  let dir: string;
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    config = await testConfig();
    storage = new ObjectStorage(config.s3);
    dir = path.join(config.workDir, 'gpu-stage');
    mkdirSync(dir, { recursive: true });
  });
  afterAll(async () => {
    await storage?.close();
    await cleanupTestConfig();
  });

  it('names timing cache objects per optimizer version, SM and worker, and refuses path tricks', () => {
    expect(timingCacheKey('0.1.0', 'sm_90', 'gpu-node-3')).toBe('timing-cache/0.1.0/sm_90/gpu-node-3.tsv');
    expect(timingCachePrefix('0.1.0', 'sm_90')).toBe('timing-cache/0.1.0/sm_90/');
    expect(() => timingCacheKey('0.1.0', 'sm_90', '../../plans/x')).toThrow(StorageError);
    expect(() => timingCacheKey('0.1.0', '..', 'w')).toThrow(StorageError);
  });

  it('merges caches with the CLI: per key the faster entry wins, other optimizer versions are dropped', async () => {
    const a = path.join(dir, 'a.tsv');
    const b = path.join(dir, 'b.tsv');
    writeFileSync(a, cacheText([[OPTIMIZER_VERSION, 90, 'Conv|x', 1, 0.5], [OPTIMIZER_VERSION, 90, 'Gemm|y', 2, 0.1], ['0.0.0-old', 90, 'Conv|x', 9, 0.01]]));
    writeFileSync(b, cacheText([[OPTIMIZER_VERSION, 90, 'Conv|x', 3, 0.2], [OPTIMIZER_VERSION, 90, 'Gemm|y', 4, 0.3]]));
    const out = path.join(dir, 'merged.tsv');
    expect(await mergeTimingCaches(out, [a, b])).toMatchObject({ inputs: 2, entries: 2, droppedOtherVersions: 1 });
    expect(readFileSync(out, 'utf8')).toBe(cacheText([[OPTIMIZER_VERSION, 90, 'Conv|x', 3, 0.2], [OPTIMIZER_VERSION, 90, 'Gemm|y', 2, 0.1]]));
    // Same result in the other order (commutative), and merging the result again changes nothing (idempotent).
    const reversed = path.join(dir, 'reversed.tsv');
    await mergeTimingCaches(reversed, [b, a, out]);
    expect(readFileSync(reversed, 'utf8')).toBe(readFileSync(out, 'utf8'));
    const bad = path.join(dir, 'bad.tsv');
    writeFileSync(bad, 'not a timing cache\n');
    await expect(mergeTimingCaches(path.join(dir, 'x.tsv'), [bad])).rejects.toMatchObject({ code: 'E_PARSE', message: expect.stringMatching(/bad\.tsv.*expected header/) });
  });

  it('shares the cache through S3: each worker publishes its own file, a build starts from the merge of all', async () => {
    const target = 'sm_87';
    const w1 = new TimingCacheStore(storage, 'worker-1', dir, log);
    const w2 = new TimingCacheStore(storage, 'worker:2/../x', dir, log);
    expect(await w1.fetch(target, path.join(dir, 'none.tsv'))).toBeNull();
    expect(existsSync(path.join(dir, 'none.tsv'))).toBe(false);

    const f1 = path.join(dir, 'w1.tsv');
    const f2 = path.join(dir, 'w2.tsv');
    writeFileSync(f1, cacheText([[OPTIMIZER_VERSION, 87, 'Conv|a', 1, 0.4], [OPTIMIZER_VERSION, 87, 'Conv|b', 1, 0.9]]));
    writeFileSync(f2, cacheText([[OPTIMIZER_VERSION, 87, 'Conv|a', 2, 0.3], [OPTIMIZER_VERSION, 87, 'Pool|c', 5, 0.05]]));
    expect(await w1.publish(target, f1)).toBe(`timing-cache/${OPTIMIZER_VERSION}/sm_87/worker-1.tsv`);
    // Characters a key must not carry are replaced; the file stays under the prefix.
    expect(await w2.publish(target, f2)).toBe(`timing-cache/${OPTIMIZER_VERSION}/sm_87/worker_2_.._x.tsv`);
    // Someone else's garbage under the prefix is skipped, not fatal.
    await storage.uploadStream(`timing-cache/${OPTIMIZER_VERSION}/sm_87/broken.tsv`, Readable.from([Buffer.from('garbage')]));

    const merged = path.join(dir, 'start.tsv');
    expect(await w1.fetch(target, merged)).toEqual({ files: 2, entries: 3 });
    expect(readFileSync(merged, 'utf8')).toBe(
      cacheText([[OPTIMIZER_VERSION, 87, 'Conv|a', 2, 0.3], [OPTIMIZER_VERSION, 87, 'Conv|b', 1, 0.9], [OPTIMIZER_VERSION, 87, 'Pool|c', 5, 0.05]]),
    );
    // Another SM's caches are not mixed in.
    expect(await w1.fetch('sm_80', path.join(dir, 'other.tsv'))).toBeNull();
  });

  it('tunes at the profiles\' opt shapes, else the static shape, else 1 for each dynamic dimension', () => {
    const info = {
      inputs: [
        { name: 'images', dtype: 'float32', shape: ['batch', 3, 224, 224] },
        { name: 'ids', dtype: 'int64', shape: ['batch', 'seq'] },
        { name: 'scale', dtype: 'float32', shape: [1] },
      ],
      profiles: { images: { min: [1, 3, 224, 224], opt: [8, 3, 224, 224], max: [32, 3, 224, 224] } },
    };
    expect(tuningShapes(info)).toEqual({ shapes: { images: [8, 3, 224, 224], ids: [1, 1], scale: [1] }, guessed: ['ids'] });
  });

  it('GPU commands fail with E_NO_GPU naming the driver; the stage leaves the untuned plan and no temp files', async () => {
    const model = path.join(dir, 'tiny.onnx');
    writeFileSync(model, tinyConvNet({ size: 8 }));
    const plan = path.join(dir, 'tiny.plan');
    await buildPlan({ modelPath: model, outputPath: plan, target: 'sm_90', precision: 'fp32' });
    const before = readFileSync(plan);
    const shapes = { input: [1, 3, 8, 8] };
    // A dynamic input without a shape is the caller's mistake, said before any GPU is looked for.
    await expect(profilePlanOnGpu(plan)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: expect.stringMatching(/input 'input' has dynamic dimensions/) });
    for (const call of [
      () => tunePlanOnGpu(plan, path.join(dir, 'tuned.plan'), path.join(dir, 'tc.tsv'), { shapes }),
      () => profilePlanOnGpu(plan, { shapes }),
      () => verifyPlanOnGpu(plan, { shapes }),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BuildError);
      expect(err).toMatchObject({ code: 'E_NO_GPU', message: expect.stringMatching(/libcuda\.so\.1/) });
      expect((err as BuildError).permanent).toBe(false);
    }
    const stage = new GpuPlanStage(storage, 'stage-test', dir, log);
    await expect(stage.run(plan, 'sm_90', { log })).rejects.toMatchObject({ code: 'E_NO_GPU' });
    expect(readFileSync(plan).equals(before)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.startsWith('tiny.plan.'))).toEqual([]);
    // A missing CLI is named, not an ENOENT.
    const saved = process.env.PLANFORGE_OPT_PATH;
    process.env.PLANFORGE_OPT_PATH = path.join(dir, 'no-such-cli');
    try {
      await expect(profilePlanOnGpu(plan, { shapes })).rejects.toMatchObject({ code: 'E_NATIVE_UNAVAILABLE', message: expect.stringMatching(/planforge-opt not found/) });
    } finally {
      if (saved === undefined) delete process.env.PLANFORGE_OPT_PATH;
      else process.env.PLANFORGE_OPT_PATH = saved;
    }
  });
});
