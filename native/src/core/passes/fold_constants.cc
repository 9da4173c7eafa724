// fold_constants: evaluates nodes whose inputs are all constants with the CPU reference kernels
// and replaces them by initializers. Shape / Size of statically shaped values fold too.
#include <set>

#include "../executor.h"
#include "pass.h"

namespace planforge {
namespace {

// Nondeterministic ops must run at inference time, never at build time.
bool isFoldable(const Node& n) {
  static const std::set<std::string> never = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                                              "Multinomial", "Bernoulli"};
  return n.domain.empty() && !never.count(n.opType);
}

uint64_t typeBytes(const ValueType* t) {
  if (!t || !t->isStatic() || !t->known()) return UINT64_MAX;  // unknown: decide after running
  uint64_t n = 1;
  for (int64_t d : t->dims) n *= static_cast<uint64_t>(d);
  return n * dataTypeSize(t->dtype);
}

std::string describeTensor(const Tensor& t) {
  return std::string(dataTypeName(t.dtype)) + " " + shapeToString(t.shape);
}

class FoldConstants : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    for (size_t i = 0; i < g.nodes.size();) {
      ctx.checkCancelled();
      if (foldStaticShape(g, i, changes) || foldNode(g, i, ctx, changes)) continue;  // node i was removed
      ++i;
    }
  }

 private:
  static void replaceByConstants(Graph& g, size_t i, std::vector<Tensor>& outs) {
    Node n = g.nodes[i];
    g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(i));
    for (size_t k = 0; k < n.outputs.size() && k < outs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      const Tensor& t = outs[k];
      g.types[n.outputs[k]] = ValueType{t.dtype, true, t.shape, std::vector<std::string>(t.shape.size())};
      g.initializers[n.outputs[k]] = std::move(outs[k]);
    }
  }

  // Shape(x) / Size(x) where x's shape is fully known, even if x itself is not constant.
  static bool foldStaticShape(Graph& g, size_t i, std::vector<std::string>& changes) {
    const Node& n = g.nodes[i];
    if (!n.domain.empty() || (n.opType != "Shape" && n.opType != "Size") || n.inputs.empty()) return false;
    if (g.isConstant(n.inputs[0])) return false;  // the generic path handles it
    const ValueType* t = g.typeOf(n.inputs[0]);
    if (!t || !t->isStatic()) return false;
    std::vector<Tensor> outs(1);
    if (n.opType == "Size") {
      outs[0] = Tensor(DataType::kInt64, {});
      *outs[0].data<int64_t>() = shapeNumel(t->dims);
    } else {
      const int64_t rank = static_cast<int64_t>(t->dims.size());
      int64_t start = n.attrs.getInt("start", 0), end = n.attrs.getInt("end", rank);
      if (start < 0) start += rank;
      if (end < 0) end += rank;
      start = std::min(std::max<int64_t>(start, 0), rank);
      end = std::min(std::max<int64_t>(end, 0), rank);
      const int64_t len = std::max<int64_t>(end - start, 0);
      outs[0] = Tensor(DataType::kInt64, {len});
      for (int64_t k = 0; k < len; ++k) outs[0].data<int64_t>()[k] = t->dims[static_cast<size_t>(start + k)];
    }
    changes.push_back("folded " + nodeLabel(n) + " of static shape " + shapeToString(t->dims) + " into a constant");
    replaceByConstants(g, i, outs);
    return true;
  }

  // DequantizeLinear of an int8 / uint8 constant is a quantized weight with the model's own scales
  // (a Q/DQ model): folding it to floats would make INT8 requantize it with scales of its own.
  static bool isQuantizedWeight(const Graph& g, const Node& n) {
    if (n.opType != "DequantizeLinear" || n.inputs.empty()) return false;
    auto it = g.initializers.find(n.inputs[0]);
    return it != g.initializers.end() && (it->second.dtype == DataType::kInt8 || it->second.dtype == DataType::kUint8);
  }

  static bool foldNode(Graph& g, size_t i, const PassContext& ctx, std::vector<std::string>& changes) {
    const Node& n = g.nodes[i];
    if (!isFoldable(n) || n.inputs.empty() || isQuantizedWeight(g, n)) return false;
    std::vector<const Tensor*> ins;
    uint64_t inBytes = 0;
    for (const auto& in : n.inputs) {
      if (in.empty()) {
        ins.push_back(nullptr);
        continue;
      }
      auto it = g.initializers.find(in);
      if (it == g.initializers.end()) return false;
      ins.push_back(&it->second);
      inBytes += it->second.bytes.size();
    }
    uint64_t limit = std::max<uint64_t>(ctx.maxFoldBytes, inBytes);
    uint64_t declared = 0;
    for (const auto& o : n.outputs) {
      uint64_t b = o.empty() ? 0 : typeBytes(g.typeOf(o));
      if (b != UINT64_MAX) declared += b;
      if (b != UINT64_MAX && declared > limit) return false;  // would bloat the plan
    }
    std::vector<Tensor> outs = runNode(g, n, ins);
    uint64_t outBytes = 0;
    for (const auto& t : outs) outBytes += t.bytes.size();
    if (outBytes > limit) return false;
    std::string what = nodeLabel(n) + " into ";
    for (size_t k = 0; k < outs.size() && k < n.outputs.size(); ++k) what += (k ? ", " : "") + describeTensor(outs[k]);
    changes.push_back("folded " + what);
    replaceByConstants(g, i, outs);
    return true;
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("fold_constants", "evaluate nodes whose inputs are all constant at build time", 200, FoldConstants);

}  // namespace planforge
