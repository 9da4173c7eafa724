/**
 * onnxruntime-node, the numerical oracle, run in a child process: inside jest's VM realm its typed
 * arrays fail onnxruntime's instanceof checks.
 */
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/test/helpers → repository root (where node_modules/onnxruntime-node resolves from). */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface OnnxruntimeFeed {
  name: string;
  /** onnxruntime tensor type: float32, float16 (raw half bits), int64, int32, int8, uint8, bool. */
  type: string;
  dims: number[];
  data: number[];
}

export interface OnnxruntimeJob {
  model: string;
  feeds: OnnxruntimeFeed[];
}

export interface OnnxruntimeOutput {
  type: string;
  dims: number[];
  data: number[];
}

/** One result per job, in order: every output of the session (in outputNames order), or the error onnxruntime raised. */
export type OnnxruntimeResult = { outputs: OnnxruntimeOutput[] } | { error: string };

/** Runs each job's model on its feeds in one onnxruntime-node child process. */
export function onnxruntimeOutputs(jobs: OnnxruntimeJob[]): OnnxruntimeResult[] {
  const script = `
    const ort = require('onnxruntime-node');
    const jobs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    const ctor = { float32: Float32Array, float16: Uint16Array, int64: BigInt64Array, int32: Int32Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array };
    (async () => {
      const results = [];
      for (const job of jobs) {
        try {
          const s = await ort.InferenceSession.create(job.model);
          const feeds = {};
          for (const f of job.feeds) {
            const data = f.type === 'int64' ? BigInt64Array.from(f.data.map((v) => BigInt(v))) : ctor[f.type].from(f.data);
            feeds[f.name] = new ort.Tensor(f.type, data, f.dims);
          }
          const out = await s.run(feeds);
          results.push({ outputs: s.outputNames.map((n) => ({ type: out[n].type, dims: out[n].dims, data: Array.from(out[n].data, (v) => Number(v)) })) });
        } catch (e) {
          results.push({ error: String(e && e.message || e) });
        }
      }
      process.stdout.write(JSON.stringify(results));
    })();`;
  const r = spawnSync(process.execPath, ['-e', script], { input: JSON.stringify(jobs), encoding: 'utf8', cwd: REPO_ROOT, maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`onnxruntime child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as OnnxruntimeResult[];
}
