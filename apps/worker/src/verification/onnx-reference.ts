import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { TensorValue } from '../../../../libs/native/index.js';
import { VerificationError } from './verification-error.js';

type Pending = { resolve: (v: Record<string, TensorValue>) => void; reject: (e: Error) => void };

/**
 * The original ONNX model on onnxruntime-node (CPU), in a worker thread of its own: the
 * numerical oracle plans are verified against. close() is idempotent and ends the thread.
 */
export class OnnxReference {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | null = null;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {
    worker.on('message', (msg: { type: string; id: number; outputs?: Record<string, TensorValue>; message?: string }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.type === 'result') p.resolve(msg.outputs!);
      else p.reject(new VerificationError(`the ONNX reference (onnxruntime) failed: ${msg.message}`));
    });
    const die = (err: Error) => {
      this.failure ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', (err) => die(new VerificationError(`the ONNX reference (onnxruntime) crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => {
      if (!this.closed) die(new VerificationError(`the ONNX reference (onnxruntime) thread exited with code ${code}`));
    });
  }

  /** Loads the model in a new thread; rejects with VerificationError when onnxruntime refuses it. */
  static open(modelPath: string, threads = Math.min(4, os.availableParallelism())): Promise<OnnxReference> {
    const worker = new Worker(new URL('./onnx-reference.worker.js', import.meta.url), { workerData: { modelPath, threads } });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        cleanup();
        void worker.terminate();
        reject(new VerificationError(`onnxruntime cannot load the model: ${err.message}`, { cause: err }));
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new VerificationError(`the ONNX reference (onnxruntime) thread exited with code ${code} while loading the model`));
      };
      const onMessage = (msg: { type: string; inputNames: string[]; outputNames: string[] }) => {
        if (msg.type !== 'ready') return;
        cleanup();
        resolve(new OnnxReference(worker, msg.inputNames, msg.outputNames));
      };
      const cleanup = () => {
        worker.off('error', onError);
        worker.off('exit', onExit);
        worker.off('message', onMessage);
      };
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.on('message', onMessage);
    });
  }

  run(inputs: Record<string, TensorValue>): Promise<Record<string, TensorValue>> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new VerificationError('the ONNX reference is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, inputs });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new VerificationError('the ONNX reference was closed'));
    this.pending.clear();
    await this.worker.terminate();
  }
}
