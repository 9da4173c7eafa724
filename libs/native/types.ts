import type { Precision, Target } from '../contracts/index.js';

export type Dim = number | string;

export interface ValueInfo {
  name: string;
  /** 'float32', 'int64', ... or 'unknown' */
  dtype: string;
  /** Fixed dims as numbers, symbolic dims by name ('?' when anonymous); null when the rank is unknown. */
  shape: Dim[] | null;
}

export interface ModelInfo {
  irVersion: number;
  opsetVersion: number;
  producerName: string;
  producerVersion: string;
  graphName: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  nodeCount: number;
  initializerCount: number;
  opTypes: string[];
  /** False when some op has no implementation; unsupportedOps lists them with node names. */
  supported: boolean;
  unsupportedOps: string;
  modelSha256: string;
}

export interface ProfileDims {
  min: number[];
  opt: number[];
  max: number[];
}

export interface CalibrationOptions {
  /** Folder of calibration inputs: DIR/<input>.npy, or DIR/<batch>/<input>.npy per batch. */
  dataDir?: string;
  /** JSON calibration cache: used instead of calibrating when it exists, written otherwise. */
  cacheFile?: string;
  method?: 'entropy' | 'minmax' | 'percentile';
  percentile?: number;
}

export interface ImportLimits {
  maxModelBytes?: number;
  maxTensorBytes?: number;
  maxTotalBytes?: number;
}

export interface BuildPlanOptions {
  modelPath: string;
  outputPath: string;
  target: Target;
  precision: Precision;
  profiles?: Record<string, ProfileDims>;
  /** Original ONNX node name -> precision. */
  layerPrecisions?: Record<string, string>;
  specHash?: string;
  /** Hex sha256 of the model file; computed by the optimizer when absent. */
  modelSha256?: string;
  calibration?: CalibrationOptions;
  /** Pass ids to run instead of the default pipeline. */
  passes?: string[];
  /** Import limits against allocation bombs (bytes); defaults: model 2 GiB, tensor 2 GiB, all constants 4 GiB. */
  limits?: ImportLimits;
  onProgress?: (stage: string, percent: number) => void;
  signal?: AbortSignal;
}

export interface PlanHeaderInfo {
  formatVersion: number;
  optimizerVersion: string;
  sm: Target;
  precision: Precision;
  modelSha256: string;
  specHash: string;
  tuned: boolean;
}

export interface PassSummary {
  id: string;
  nodesBefore: number;
  nodesAfter: number;
  changes: string[];
}

export interface BuildSummary {
  header: PlanHeaderInfo;
  planSize: number;
  /** sha256 of the plan bytes (plans are deterministic: equal inputs give equal hashes). */
  planSha256: string;
  nodesBefore: number;
  nodesAfter: number;
  layers: number;
  passes: PassSummary[];
}

export interface LayerInfo {
  name: string;
  op: string;
  inputs: string[];
  outputs: string[];
  precision: string;
  tactic: number;
  originalNodes: string[];
}

export interface PlanInfo {
  header: PlanHeaderInfo;
  planSize: number;
  nodesBefore: number;
  nodesAfter: number;
  irVersion: number;
  opsetVersion: number;
  producerName: string;
  graphName: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  profiles: Record<string, ProfileDims>;
  layers: LayerInfo[];
  weights: number;
  weightBytes: number;
  /** The kernels section: the cubin of the plan's SM (empty when the optimizer was built without nvcc). */
  kernels: { sm: Target; name: string; size: number }[];
  /** One line on the kernels section, or why it is empty. */
  kernelsSummary: string;
  calibration: { method: string; tensors: number };
  passes: PassSummary[];
}

export type TensorDType = 'float32' | 'float16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'bool';

export interface TensorValue {
  dtype: TensorDType | string;
  shape: number[];
  data: ArrayBufferView;
}

export interface RunPlanOptions {
  /** Refuse (E_WRONG_SM) a plan built for another SM; the CPU reference run ignores the SM otherwise. */
  expectedSm?: Target;
}
