// The in-memory IR shared by the importer, the passes, the builder, the plan format
// and the CPU reference executor. No protobuf and no node-addon-api types in here.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "op_registry.h"
#include "tensor.h"

namespace planforge {

// Type of a value: dtype plus shape, where a dimension may be symbolic ("batch")
// or unknown. dims[i] < 0 means not a fixed size; dimParams[i] then holds the symbol
// name ("" when anonymous). hasShape=false means even the rank is unknown.
struct ValueType {
  DataType dtype = DataType::kUndefined;
  bool hasShape = false;
  Shape dims;                          // -1 for a symbolic / unknown dimension
  std::vector<std::string> dimParams;  // same length as dims; "" when fixed or anonymous

  bool known() const { return dtype != DataType::kUndefined; }
  bool isStatic() const;               // shape known and every dim fixed
  std::string toString() const;        // "float32[batch,3,224,224]"
};

struct Node {
  std::string opType;
  std::string name;
  std::string domain;                 // "" (= "ai.onnx") for the default ONNX domain
  std::vector<std::string> inputs;    // "" marks an omitted optional input
  std::vector<std::string> outputs;
  Attributes attrs;
  // Names of the original ONNX nodes this node stands for. The importer sets {name};
  // a fusion pass concatenates the lists of the nodes it fuses.
  std::vector<std::string> originalNames;
  // Set by the builder (precision assignment, tactic selection); "" / 0 until then.
  std::string precision;
  int64_t tactic = 0;
};

struct Graph {
  // Model metadata.
  int64_t irVersion = 0;
  int opset = 0;                       // opset of the default ONNX domain
  std::map<std::string, int64_t> opsetImports;  // domain -> version (default domain under "")
  std::string producerName;
  std::string producerVersion;
  std::string name;

  std::vector<Node> nodes;             // topologically sorted after import and after every pass
  std::vector<std::string> inputs;     // runtime inputs (graph inputs that are not initializers)
  std::vector<std::string> outputs;
  std::map<std::string, Tensor> initializers;  // constant values by name (incl. folded Constants)
  std::map<std::string, ValueType> types;      // dtype/shape of every known value (inputs, outputs, intermediates)

  bool isConstant(const std::string& value) const { return initializers.count(value) != 0; }
  const ValueType* typeOf(const std::string& value) const;
  // Index of the node producing a value, -1 when it is a graph input / initializer / unknown.
  int producerIndex(const std::string& value) const;
  // How many node inputs + graph outputs reference each value.
  std::map<std::string, int> useCounts() const;
  // Re-sorts nodes topologically (stable: keeps the current order where possible).
  // Throws BuildError(kInvalidModel) naming a node on a cycle or with an undefined input.
  void topologicalSort();
  // Drops initializers and types no node or graph output references any more.
  void pruneUnusedValues();
  // A value name not used yet in this graph, derived from base.
  std::string uniqueValueName(const std::string& base) const;
  std::string uniqueNodeName(const std::string& base) const;
};

// ValueInfo (op_registry.h) view of a value for shape inference / kernels.
ValueInfo valueInfoOf(const Graph& g, const std::string& value);

// Runs OpRegistry infer over every node in order and records output types in g.types.
// Unknown dims stay symbolic (-1). Throws BuildError(kShape) naming the node on an
// inconsistency, BuildError(kUnsupportedOp) when an op has no definition.
void inferShapes(Graph& g);
// Shape inference for node g.nodes[index] only (its inputs must be typed already).
void inferNodeShapes(Graph& g, size_t index);

// The op types in g that OpRegistry does not know, with the node names using them:
// "OpA (node1, node2), OpB (node3)". Empty when everything is supported.
std::string unsupportedOpsReport(const Graph& g);

}  // namespace planforge
