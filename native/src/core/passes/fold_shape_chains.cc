// fold_shape_chains: Gather / Slice over Shape(x) where the selected dimensions of x are fixed
// becomes a constant even when x has symbolic dims (e.g. the "3x224x224" of a dynamic batch).
// fold_constants then folds the rest of the chain (Unsqueeze, Concat, ...).
#include "pass.h"

namespace planforge {
namespace {

// Full shape of x (dims may be -1) if value is Shape(x) without start/end, else nullptr.
const ValueType* shapeSource(const Graph& g, const std::string& value) {
  int p = g.producerIndex(value);
  if (p < 0) return nullptr;
  const Node& s = g.nodes[static_cast<size_t>(p)];
  if (s.opType != "Shape" || !s.domain.empty() || s.attrs.has("start") || s.attrs.has("end") || s.inputs.empty()) return nullptr;
  const ValueType* t = g.typeOf(s.inputs[0]);
  return t && t->hasShape ? t : nullptr;
}

const Tensor* constInput(const Graph& g, const Node& n, size_t k) {
  if (k >= n.inputs.size() || n.inputs[k].empty()) return nullptr;
  auto it = g.initializers.find(n.inputs[k]);
  return it == g.initializers.end() ? nullptr : &it->second;
}

class FoldShapeChains : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      ctx.checkCancelled();
      Node& n = g.nodes[i];
      if (!n.domain.empty() || n.inputs.empty() || n.outputs.size() != 1) continue;
      const ValueType* src = shapeSource(g, n.inputs[0]);
      if (!src) continue;
      const int64_t rank = static_cast<int64_t>(src->dims.size());
      std::vector<int64_t> picked;
      bool scalar = false;
      if (n.opType == "Gather") {
        const Tensor* idx = constInput(g, n, 1);
        if (!idx || n.attrs.getInt("axis", 0) != 0 || idx->shape.size() > 1) continue;
        scalar = idx->shape.empty();
        bool ok = true;
        for (int64_t k : idx->toInt64Vector()) {
          if (k < 0) k += rank;
          if (k < 0 || k >= rank) { ok = false; break; }
          picked.push_back(src->dims[static_cast<size_t>(k)]);
        }
        if (!ok) continue;
      } else if (n.opType == "Slice" && g.opset >= 10) {
        const Tensor* starts = constInput(g, n, 1);
        const Tensor* ends = constInput(g, n, 2);
        if (!starts || !ends || starts->numel() != 1 || ends->numel() != 1) continue;
        if (n.inputs.size() > 3 && !n.inputs[3].empty()) {
          const Tensor* axes = constInput(g, n, 3);
          if (!axes || axes->numel() != 1 || (axes->getInt64(0) != 0 && axes->getInt64(0) != -1)) continue;
        }
        int64_t step = 1;
        if (n.inputs.size() > 4 && !n.inputs[4].empty()) {
          const Tensor* steps = constInput(g, n, 4);
          if (!steps || steps->numel() != 1) continue;
          step = steps->getInt64(0);
        }
        if (step != 1) continue;
        int64_t s = starts->getInt64(0), e = ends->getInt64(0);
        if (s < 0) s += rank;
        if (e < 0) e += rank;
        s = std::min(std::max<int64_t>(s, 0), rank);
        e = std::min(std::max<int64_t>(e, 0), rank);
        for (int64_t k = s; k < e; ++k) picked.push_back(src->dims[static_cast<size_t>(k)]);
      } else {
        continue;
      }
      bool allFixed = true;
      for (int64_t d : picked) allFixed = allFixed && d >= 0;
      if (!allFixed) continue;
      Tensor t(DataType::kInt64, scalar ? Shape{} : Shape{static_cast<int64_t>(picked.size())});
      for (size_t k = 0; k < picked.size(); ++k) t.data<int64_t>()[k] = picked[k];
      changes.push_back("folded " + nodeLabel(n) + " of Shape(" + src->toString() + ") into constant [" + shapeToString(t.shape) + "]");
      std::string out = n.outputs[0];
      g.types[out] = ValueType{DataType::kInt64, true, t.shape, std::vector<std::string>(t.shape.size())};
      g.initializers[out] = std::move(t);
      g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(i));
      --i;
    }
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("fold_shape_chains", "turn Gather/Slice of Shape over fixed dims into constants", 150, FoldShapeChains);

}  // namespace planforge
