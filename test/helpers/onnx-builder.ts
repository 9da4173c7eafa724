/**
 * Builds small ONNX models from TypeScript for tests (and the sample model).
 * Uses protobufjs with the ONNX schema embedded below (onnx.proto from libonnx-dev,
 * comments stripped), so tests need no Python and no files on disk.
 */
import { writeFileSync } from 'node:fs';
import protobuf from 'protobufjs';

// onnx.proto (ONNX IR version 8), comments removed.
const ONNX_PROTO = `
syntax = "proto2";
package onnx;
enum Version {
  _START_VERSION = 0;
  IR_VERSION_2017_10_10 = 0x0000000000000001;
  IR_VERSION_2017_10_30 = 0x0000000000000002;
  IR_VERSION_2017_11_3 = 0x0000000000000003;
  IR_VERSION_2019_1_22 = 0x0000000000000004;
  IR_VERSION_2019_3_18 = 0x0000000000000005;
  IR_VERSION_2019_9_19 = 0x0000000000000006;
  IR_VERSION_2020_5_8 = 0x0000000000000007;
  IR_VERSION = 0x0000000000000008;
}
message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0;
    FLOAT = 1;
    INT = 2;
    STRING = 3;
    TENSOR = 4;
    GRAPH = 5;
    SPARSE_TENSOR = 11;
    TYPE_PROTO = 13;
    FLOATS = 6;
    INTS = 7;
    STRINGS = 8;
    TENSORS = 9;
    GRAPHS = 10;
    SPARSE_TENSORS = 12;
    TYPE_PROTOS = 14;
  }
  optional string name = 1;
  optional string ref_attr_name = 21;
  optional string doc_string = 13;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  optional SparseTensorProto sparse_tensor = 22;
  optional TypeProto tp = 14;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  repeated SparseTensorProto sparse_tensors = 23;
  repeated TypeProto type_protos = 15;
}
message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
}
message TrainingInfoProto {
  optional GraphProto initialization = 1;
  optional GraphProto algorithm = 2;
  repeated StringStringEntryProto initialization_binding = 3;
  repeated StringStringEntryProto update_binding = 4;
}
message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
  repeated TrainingInfoProto training_info = 20;
  repeated FunctionProto functions = 25;
};
message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
};
message TensorAnnotation {
  optional string tensor_name = 1;
  repeated StringStringEntryProto quant_parameter_tensor_names = 2;
}
message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated SparseTensorProto sparse_initializer = 15;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
  repeated TensorAnnotation quantization_annotation = 14;
  reserved 3, 4, 6 to 9;
  reserved "ir_version", "producer_version", "producer_tag", "domain";
}
message TensorProto {
  enum DataType {
    UNDEFINED = 0;
    FLOAT = 1;
    UINT8 = 2;
    INT8 = 3;
    UINT16 = 4;
    INT16 = 5;
    INT32 = 6;
    INT64 = 7;
    STRING = 8;
    BOOL = 9;
    FLOAT16 = 10;
    DOUBLE = 11;
    UINT32 = 12;
    UINT64 = 13;
    COMPLEX64 = 14;
    COMPLEX128 = 15;
    BFLOAT16 = 16;
  }
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  message Segment {
    optional int64 begin = 1;
    optional int64 end = 2;
  }
  optional Segment segment = 3;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional string doc_string = 12;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  enum DataLocation {
    DEFAULT = 0;
    EXTERNAL = 1;
  }
  optional DataLocation data_location = 14;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
}
message SparseTensorProto {
  optional TensorProto values = 1;
  optional TensorProto indices = 2;
  repeated int64 dims = 3;
}
message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    };
    optional string denotation = 3;
  };
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  message Sequence {
    optional TypeProto elem_type = 1;
  };
  message Map {
    optional int32 key_type = 1;
    optional TypeProto value_type = 2;
  };
  message Optional {
    optional TypeProto elem_type = 1;
  };
  message SparseTensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
    Sequence sequence_type = 4;
    Map map_type = 5;
    Optional optional_type = 9;
    SparseTensor sparse_tensor_type = 8;
  }
  optional string denotation = 6;
}
message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
enum OperatorStatus {
    EXPERIMENTAL = 0;
    STABLE = 1;
}
message FunctionProto {
  optional string name = 1;
  reserved 2;
  reserved "since_version";
  reserved 3;
  reserved "status";
  repeated string input = 4;
  repeated string output = 5;
  repeated string attribute = 6;
  repeated NodeProto node = 7;
  optional string doc_string = 8;
  repeated OperatorSetIdProto opset_import = 9;
  optional string domain = 10;
}
option optimize_for = LITE_RUNTIME;
`;

const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
const ModelProto = root.lookupType('onnx.ModelProto');
const TensorProtoType = root.lookupType('onnx.TensorProto');

export type DType = 'float32' | 'float16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool' | 'string';

/** ONNX TensorProto.DataType numbers. */
export const ONNX_DTYPES: Record<DType, number> = {
  float32: 1, uint8: 2, int8: 3, int16: 5, int32: 6, int64: 7, string: 8, bool: 9, float16: 10, float64: 11,
};

/** A graph input / output / value_info. shape: numbers for fixed dims, strings for symbolic ones, null for unknown rank. */
export interface ValueSpec {
  name: string;
  dtype?: DType;
  shape?: (number | string | null)[] | null;
}

/** A constant tensor. data is converted to dtype; raw bytes (little-endian) win when given. */
export interface TensorSpec {
  name?: string;
  dtype?: DType;
  dims: number[];
  data?: ArrayLike<number> | readonly bigint[];
  raw?: Uint8Array;
  /** Store the bytes as external data instead (the test writes the file itself). */
  external?: { location: string; offset?: number; length?: number };
  /** Put values in the typed fields (float_data, int64_data...) instead of raw_data. */
  typedFields?: boolean;
}

type TaggedAttr =
  | { kind: 'float'; value: number }
  | { kind: 'int'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'floats'; value: number[] }
  | { kind: 'ints'; value: number[] }
  | { kind: 'strings'; value: string[] }
  | { kind: 'tensor'; value: TensorSpec };

/**
 * Attribute value. Plain numbers: integers become INT, others FLOAT; arrays likewise
 * (any non-integer makes FLOATS). Use attr.float(1) for a float that happens to be whole.
 */
export type AttrValue = number | string | number[] | string[] | TaggedAttr;

export const attr = {
  float: (value: number): TaggedAttr => ({ kind: 'float', value }),
  int: (value: number): TaggedAttr => ({ kind: 'int', value }),
  string: (value: string): TaggedAttr => ({ kind: 'string', value }),
  floats: (value: number[]): TaggedAttr => ({ kind: 'floats', value }),
  ints: (value: number[]): TaggedAttr => ({ kind: 'ints', value }),
  strings: (value: string[]): TaggedAttr => ({ kind: 'strings', value }),
  tensor: (value: TensorSpec): TaggedAttr => ({ kind: 'tensor', value }),
};

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

export interface ModelSpec {
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  nodes: NodeSpec[];
  initializers?: (TensorSpec & { name: string })[];
  valueInfos?: ValueSpec[];
  /** Default-domain opset; 13 when omitted. */
  opset?: number;
  extraOpsets?: Record<string, number>;
  irVersion?: number;
  producerName?: string;
  graphName?: string;
  /** List initializers among graph inputs too (IR < 4 style). */
  initializersAsInputs?: boolean;
}

function typedBytes(dtype: DType, dims: number[], data: TensorSpec['data']): Uint8Array {
  const n = dims.reduce((a, b) => a * b, 1);
  const values = data ?? new Array<number>(n).fill(0);
  if (values.length !== n) throw new Error(`tensor data has ${values.length} values, dims ${dims.join('x')} need ${n}`);
  const num = (i: number): number => Number((values as ArrayLike<number | bigint>)[i]);
  switch (dtype) {
    case 'float32': return new Uint8Array(Float32Array.from({ length: n }, (_, i) => num(i)).buffer);
    case 'float64': return new Uint8Array(Float64Array.from({ length: n }, (_, i) => num(i)).buffer);
    case 'float16': return new Uint8Array(Uint16Array.from({ length: n }, (_, i) => floatToHalf(num(i))).buffer);
    case 'int64': return new Uint8Array(BigInt64Array.from({ length: n }, (_, i) => BigInt((values as ArrayLike<number | bigint>)[i])).buffer);
    case 'int32': return new Uint8Array(Int32Array.from({ length: n }, (_, i) => num(i)).buffer);
    case 'int16': return new Uint8Array(Int16Array.from({ length: n }, (_, i) => num(i)).buffer);
    case 'int8': return new Uint8Array(Int8Array.from({ length: n }, (_, i) => num(i)).buffer);
    case 'uint8': return Uint8Array.from({ length: n }, (_, i) => num(i));
    case 'bool': return Uint8Array.from({ length: n }, (_, i) => (num(i) ? 1 : 0));
    case 'string': throw new Error('string tensors are not supported by the builder');
  }
}

/** float32 -> IEEE half bits (round to nearest even). */
export function floatToHalf(value: number): number {
  const f32 = new Float32Array([value]);
  const x = new Uint32Array(f32.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    if (abs < 0x33000000) return sign;
    const e = abs >>> 23;
    const m = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (((abs >>> 23) - 112) << 10) | ((abs & 0x7fffff) >>> 13);
  const rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

function tensorMessage(t: TensorSpec): Record<string, unknown> {
  const dtype = t.dtype ?? 'float32';
  const msg: Record<string, unknown> = { dims: t.dims, data_type: ONNX_DTYPES[dtype] };
  if (t.name !== undefined) msg.name = t.name;
  if (t.external) {
    const entries = [{ key: 'location', value: t.external.location }];
    if (t.external.offset !== undefined) entries.push({ key: 'offset', value: String(t.external.offset) });
    if (t.external.length !== undefined) entries.push({ key: 'length', value: String(t.external.length) });
    msg.external_data = entries;
    msg.data_location = 1;
    return msg;
  }
  if (t.typedFields && !t.raw) {
    const vals = Array.from(t.data as ArrayLike<number | bigint>);
    if (dtype === 'float32') msg.float_data = vals.map(Number);
    else if (dtype === 'float64') msg.double_data = vals.map(Number);
    else if (dtype === 'int64') msg.int64_data = vals.map((v) => String(v));
    else if (dtype === 'float16') msg.int32_data = vals.map((v) => floatToHalf(Number(v)));
    else msg.int32_data = vals.map((v) => (dtype === 'bool' ? (Number(v) ? 1 : 0) : Number(v)));
    return msg;
  }
  msg.raw_data = t.raw ?? typedBytes(dtype, t.dims, t.data);
  return msg;
}

function attrMessage(name: string, value: AttrValue): Record<string, unknown> {
  // AttributeType: FLOAT=1 INT=2 STRING=3 TENSOR=4 FLOATS=6 INTS=7 STRINGS=8
  let tagged: TaggedAttr;
  if (typeof value === 'number') tagged = Number.isInteger(value) ? attr.int(value) : attr.float(value);
  else if (typeof value === 'string') tagged = attr.string(value);
  else if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) tagged = attr.strings(value as string[]);
    else if ((value as number[]).every((v) => Number.isInteger(v))) tagged = attr.ints(value as number[]);
    else tagged = attr.floats(value as number[]);
  } else tagged = value;
  const enc = new TextEncoder();
  switch (tagged.kind) {
    case 'float': return { name, type: 1, f: tagged.value };
    case 'int': return { name, type: 2, i: tagged.value };
    case 'string': return { name, type: 3, s: enc.encode(tagged.value) };
    case 'tensor': return { name, type: 4, t: tensorMessage(tagged.value) };
    case 'floats': return { name, type: 6, floats: tagged.value };
    case 'ints': return { name, type: 7, ints: tagged.value };
    case 'strings': return { name, type: 8, strings: tagged.value.map((s) => enc.encode(s)) };
  }
}

function valueInfoMessage(v: ValueSpec): Record<string, unknown> {
  const tensorType: Record<string, unknown> = { elem_type: ONNX_DTYPES[v.dtype ?? 'float32'] };
  if (v.shape) {
    tensorType.shape = {
      dim: v.shape.map((d) => (d === null ? {} : typeof d === 'number' ? { dim_value: d } : { dim_param: d })),
    };
  }
  return { name: v.name, type: { tensor_type: tensorType } };
}

/** Serializes a ModelProto. */
export function makeModel(spec: ModelSpec): Buffer {
  const initializers = spec.initializers ?? [];
  const inputs = spec.inputs.map(valueInfoMessage);
  if (spec.initializersAsInputs)
    for (const init of initializers) inputs.push(valueInfoMessage({ name: init.name, dtype: init.dtype, shape: init.dims }));
  const opsets = [{ domain: '', version: spec.opset ?? 13 }];
  for (const [domain, version] of Object.entries(spec.extraOpsets ?? {})) opsets.push({ domain, version });
  const model = {
    ir_version: spec.irVersion ?? 8,
    producer_name: spec.producerName ?? 'planforge-test',
    producer_version: '0.1.0',
    opset_import: opsets,
    graph: {
      name: spec.graphName ?? 'test_graph',
      node: spec.nodes.map((n, i) => ({
        op_type: n.op,
        name: n.name ?? `${n.op.toLowerCase()}_${i}`,
        domain: n.domain ?? '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attrMessage(k, v)),
      })),
      initializer: initializers.map(tensorMessage),
      input: inputs,
      output: spec.outputs.map(valueInfoMessage),
      value_info: (spec.valueInfos ?? []).map(valueInfoMessage),
    },
  };
  const err = ModelProto.verify(model);
  if (err) throw new Error(`invalid model spec: ${err}`);
  return Buffer.from(ModelProto.encode(ModelProto.fromObject(model)).finish());
}

/** Serializes a standalone TensorProto (like ONNX backend test data input_0.pb). */
export function makeTensorProto(t: TensorSpec): Buffer {
  return Buffer.from(TensorProtoType.encode(TensorProtoType.fromObject(tensorMessage(t))).finish());
}

/** Little-endian bytes of values as dtype (for external data files). */
export function tensorBytes(dtype: DType, dims: number[], data: ArrayLike<number>): Uint8Array {
  return typedBytes(dtype, dims, data);
}

/** Deterministic pseudo-random floats in [-scale, scale) (mulberry32). */
export function seededFloats(count: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (r * 2 - 1) * scale;
  }
  return out;
}

export interface TinyConvNetOptions {
  /** Batch dimension: a number for a fixed batch, a string for a symbolic one (default 'batch'). */
  batch?: number | string;
  /** Spatial size of the square input (default 8). */
  size?: number;
  opset?: number;
}

/**
 * input[batch,3,S,S] -> Conv(4,3x3,pad 1) -> BatchNormalization -> Relu -> Identity -> Dropout
 * -> GlobalAveragePool -> Flatten -> Gemm(10) -> output[batch,10]. Weights are seeded, so the
 * bytes are the same on every call.
 */
export function tinyConvNet(opts: TinyConvNetOptions = {}): Buffer {
  const batch = opts.batch ?? 'batch';
  const size = opts.size ?? 8;
  return makeModel({
    opset: opts.opset ?? 13,
    graphName: 'tiny_cnn',
    producerName: 'planforge-onnx-builder',
    inputs: [{ name: 'input', dtype: 'float32', shape: [batch, 3, size, size] }],
    outputs: [{ name: 'output', dtype: 'float32', shape: [batch, 10] }],
    initializers: [
      { name: 'conv.weight', dims: [4, 3, 3, 3], data: seededFloats(108, 1, 0.5) },
      { name: 'conv.bias', dims: [4], data: seededFloats(4, 2, 0.1) },
      { name: 'bn.scale', dims: [4], data: [1.0, 0.9, 1.1, 1.2] },
      { name: 'bn.bias', dims: [4], data: [0.0, 0.1, -0.1, 0.05] },
      { name: 'bn.mean', dims: [4], data: [0.01, -0.02, 0.03, 0.0] },
      { name: 'bn.var', dims: [4], data: [1.0, 0.5, 2.0, 1.5] },
      { name: 'fc.weight', dims: [10, 4], data: seededFloats(40, 3, 0.5) },
      { name: 'fc.bias', dims: [10], data: seededFloats(10, 4, 0.1) },
    ],
    nodes: [
      { op: 'Conv', name: 'conv', inputs: ['input', 'conv.weight', 'conv.bias'], outputs: ['conv_out'],
        attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] } },
      { op: 'BatchNormalization', name: 'bn', inputs: ['conv_out', 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'],
        outputs: ['bn_out'], attrs: { epsilon: attr.float(1e-5) } },
      { op: 'Relu', name: 'relu', inputs: ['bn_out'], outputs: ['relu_out'] },
      { op: 'Identity', name: 'identity', inputs: ['relu_out'], outputs: ['identity_out'] },
      { op: 'Dropout', name: 'dropout', inputs: ['identity_out'], outputs: ['dropout_out'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['dropout_out'], outputs: ['gap_out'] },
      { op: 'Flatten', name: 'flatten', inputs: ['gap_out'], outputs: ['flat'], attrs: { axis: 1 } },
      { op: 'Gemm', name: 'fc', inputs: ['flat', 'fc.weight', 'fc.bias'], outputs: ['output'],
        attrs: { transB: 1, alpha: attr.float(1), beta: attr.float(1) } },
    ],
  });
}

/** Writes tinyConvNet() to path (the quick-start sample). */
export function writeSampleModel(path: string, opts: TinyConvNetOptions = {}): void {
  writeFileSync(path, tinyConvNet(opts));
}
