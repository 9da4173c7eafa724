/**
 * Worker thread of OnnxReference: onnxruntime-node's InferenceSession.run computes on the
 * calling thread (its promise only defers the call), so the reference model runs here, off
 * the worker process's event loop (BullMQ marks jobs stalled when the loop blocks > 30 s).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

interface WireTensor {
  dtype: string;
  shape: number[];
  data: ArrayBufferView;
}

const { modelPath, threads } = workerData as { modelPath: string; threads: number };
const port = parentPort!;

const session = await ort.InferenceSession.create(modelPath, {
  executionProviders: ['cpu'],
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  // The reference computes the model as written: no fused or approximated kernels.
  graphOptimizationLevel: 'basic',
});
port.postMessage({ type: 'ready', inputNames: session.inputNames, outputNames: session.outputNames });

port.on('message', async (msg: { id: number; inputs: Record<string, WireTensor> }) => {
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(msg.inputs)) {
      feeds[name] = new ort.Tensor(t.dtype as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.shape);
    }
    const results = await session.run(feeds);
    const outputs: Record<string, WireTensor> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [name, t] of Object.entries(results)) {
      if (t.type === 'string') throw new Error(`output '${name}' is a string tensor`);
      const data = t.data as ArrayBufferView;
      outputs[name] = { dtype: t.type, shape: [...t.dims], data };
      if (data.buffer instanceof ArrayBuffer && !transfer.includes(data.buffer)) transfer.push(data.buffer);
    }
    port.postMessage({ type: 'result', id: msg.id, outputs }, transfer);
  } catch (err) {
    port.postMessage({ type: 'error', id: msg.id, message: (err as Error)?.message ?? String(err) });
  }
});
