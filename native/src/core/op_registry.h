// The contract between the IR / executor and the per-op CPU reference kernels.
// Each op lives in native/src/core/ops/<op_name>.cc and registers itself with
// PLANFORGE_REGISTER_OP. An op provides:
//  - infer: output dtypes and shapes from input dtypes/shapes (+ the values of
//    inputs that are constants, e.g. Reshape's shape), for shape inference;
//  - run: the reference computation (float32 math; other dtypes where ONNX allows).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tensor.h"

namespace planforge {

// What a kernel sees of a node. Legacy (opset < 7) 'broadcast'/'axis' attributes on
// arithmetic ops are normalized by the importer, so kernels always broadcast numpy-style.
struct NodeContext {
  const std::string& opType;
  const std::string& name;
  const Attributes& attrs;
  int opset;  // opset of the default ONNX domain in the model
  // Number of outputs the node declares (incl. trailing optional ones); 0 when the caller
  // does not know. Split without sizes divides by it; Dropout/BatchNormalization emit the
  // optional outputs only when asked for them.
  int numOutputs = 0;
};

// An input as seen by shape inference: dtype and shape always known (dims < 0 are
// symbolic/unknown), plus the value when the input is a constant.
struct ValueInfo {
  DataType dtype = DataType::kFloat;
  Shape shape;                 // -1 for an unknown dimension
  bool hasShape = true;        // false when even the rank is unknown
  const Tensor* constValue = nullptr;
  bool present = true;         // false for an omitted optional input ("")
};

struct OpDef {
  std::string opType;
  // Returns one ValueInfo (dtype/shape) per output. Throws BuildError(kShape) on invalid input.
  std::function<std::vector<ValueInfo>(const NodeContext&, const std::vector<ValueInfo>&)> infer;
  // Computes outputs. Omitted optional inputs are nullptr. Throws BuildError on invalid input.
  std::function<std::vector<Tensor>(const NodeContext&, const std::vector<const Tensor*>&)> run;
};

class OpRegistry {
 public:
  static OpRegistry& instance();
  void add(OpDef def);
  const OpDef* find(const std::string& opType) const;  // nullptr when unsupported
  std::vector<std::string> names() const;
 private:
  std::vector<OpDef> defs_;
};

struct OpRegistrar {
  explicit OpRegistrar(OpDef def) { OpRegistry::instance().add(std::move(def)); }
};

#define PLANFORGE_CONCAT_(a, b) a##b
#define PLANFORGE_CONCAT(a, b) PLANFORGE_CONCAT_(a, b)
#define PLANFORGE_REGISTER_OP(...) \
  static ::planforge::OpRegistrar PLANFORGE_CONCAT(planforge_op_registrar_, __LINE__)(__VA_ARGS__)

}  // namespace planforge
