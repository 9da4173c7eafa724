#!/usr/bin/env node
// Regenerates samples/tiny-cnn.onnx (Conv -> BatchNormalization -> Relu -> Identity -> Dropout ->
// GlobalAveragePool -> Flatten -> Gemm, symbolic batch) from the test model builder.
// Needs the compiled TypeScript (npm run build:ts). The output is deterministic (seeded weights).
//   node scripts/make-sample-model.js [OUTPUT]
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const builder = join(root, 'dist', 'test', 'helpers', 'onnx-builder.js');
if (!existsSync(builder)) {
  console.error(`make-sample-model: ${builder} not found; run "npm run build:ts" first`);
  process.exit(1);
}
const { writeSampleModel } = await import(pathToFileURL(builder).href);
const out = resolve(process.argv[2] ?? join(root, 'samples', 'tiny-cnn.onnx'));
mkdirSync(dirname(out), { recursive: true });
writeSampleModel(out);
console.log(`make-sample-model: wrote ${out}`);
