// ONNX ModelProto -> Graph. The only place that sees protobuf types (besides onnx_import.cc).
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "graph.h"
#include "tensor.h"

namespace onnx {
class TensorProto;
}

namespace planforge {

struct ImportOptions {
  // The serialized model (without external data) may not be larger than this.
  uint64_t maxModelBytes = (2ull << 30) - 1;  // protobuf cannot parse 2 GiB; larger models use external data
  // Any single tensor (initializer, Constant, external data) may not be larger than this.
  uint64_t maxTensorBytes = 2ull << 30;
  // Sum of all constant tensors may not exceed this (allocation-bomb guard).
  uint64_t maxTotalBytes = 4ull << 30;
  // Fail with E_UNSUPPORTED_OP when an op has no OpRegistry definition.
  bool requireSupportedOps = true;
  // Checked while converting tensors and nodes; set -> BuildError(kCancelled).
  const std::atomic<bool>* cancel = nullptr;
  // Run shape + type inference after import (skipped when unsupported ops are allowed and present).
  bool inferShapes = true;
};

// What the model file contained before any rewriting (Constant nodes become initializers).
struct ImportReport {
  int64_t nodeCount = 0;
  int64_t initializerCount = 0;
  std::vector<std::string> opTypes;  // sorted, unique ("domain::Op" outside the default domain)
  std::string unsupportedOps;        // unsupportedOpsReport() of the model; "" when all supported
};

// Reads, validates and converts a model. Throws BuildError with
// E_IO (cannot read), E_PARSE (not a ModelProto), E_INVALID_MODEL (undefined inputs,
// cycles, duplicate outputs, bad opset), E_EXTERNAL_DATA, E_RESOURCE, E_UNSUPPORTED_OP
// (lists every unsupported op type and node name), E_SHAPE.
Graph importModel(const std::string& path, const ImportOptions& options = {}, ImportReport* report = nullptr);
// Same from bytes already in memory; modelDir resolves external data ("" forbids it).
Graph importModelBytes(const std::string& bytes, const std::string& modelDir, const ImportOptions& options = {},
                       ImportReport* report = nullptr);

// For checks (checkModel): the same verdict, ImportReport, metadata and types (inputs, outputs,
// value types after shape inference) as importModel, in memory bounded by the model's structure
// rather than its weights. The file is walked as a stream (onnx_lazy_reader.h): a TensorProto
// longer than keepTensorBytes is parsed without its payload (raw_data / typed data / external
// data are counted and checked against its shape, not kept) and read again from the file only
// when its values matter (shape-like inputs such as Reshape's shape, ConstantOfShape). Such
// initializers come back with dtype and shape but no bytes: never build from this Graph.
constexpr uint64_t kInspectKeepTensorBytes = 4096;
Graph inspectModel(const std::string& path, const ImportOptions& options = {}, ImportReport* report = nullptr,
                   uint64_t keepTensorBytes = kInspectKeepTensorBytes);
// Same over bytes in memory (tests, fuzzing); modelDir as for importModelBytes.
Graph inspectModelBytes(const std::string& bytes, const std::string& modelDir, const ImportOptions& options = {},
                        ImportReport* report = nullptr, uint64_t keepTensorBytes = kInspectKeepTensorBytes);

// Converts one TensorProto (raw_data, typed fields or external data relative to modelDir).
// Enforces options.maxTensorBytes; external data must stay inside modelDir.
Tensor tensorFromProto(const onnx::TensorProto& proto, const std::string& modelDir, const ImportOptions& options = {});
// Reads a serialized TensorProto file (ONNX backend test data input_0.pb / output_0.pb).
Tensor readTensorProtoFile(const std::string& path);

// Hex sha256 of a file's bytes (model identity for plans).
std::string sha256File(const std::string& path);

}  // namespace planforge
