// reshape_dynamic_dim: a Reshape whose target shape is computed at run time only because one of
// its entries is (e.g. Concat(Unsqueeze(Gather(Shape(x), 0)), [128], [768]) for a dynamic batch)
// gets a constant target with -1 in that entry: ONNX infers a -1 dim from the element count, and
// for a valid model that is exactly the value the dynamic entry would have had. Shape inference
// then knows the output's rank and fixed dims, which lets later passes fuse through it (a
// residual Add after the layer that reads it, in BERT), and the Shape -> Gather -> Unsqueeze ->
// Concat chain becomes dead.
#include "fusion_util.h"

namespace planforge {
namespace {

class ReshapeDynamicDim : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      ctx.checkCancelled();
      Node& r = g.nodes[i];
      if (!fusion::isOp(r, "Reshape") || r.inputs.size() != 2 || g.isConstant(r.inputs[1])) continue;
      const int p = g.producerIndex(r.inputs[1]);
      if (p < 0) continue;
      const Node& cat = g.nodes[static_cast<size_t>(p)];
      if (!fusion::isOp(cat, "Concat") || cat.attrs.getInt("axis", 0) != 0) continue;
      std::vector<int64_t> target;
      int dynamic = -1;
      bool ok = true;
      for (const auto& piece : cat.inputs) {
        auto c = g.initializers.find(piece);
        if (c != g.initializers.end()) {
          if (c->second.dtype != DataType::kInt64 || c->second.shape.size() != 1) ok = false;
          for (int64_t k = 0; ok && k < c->second.numel(); ++k) {
            const int64_t v = c->second.data<int64_t>()[k];
            if (v == -1 || (v == 0 && r.attrs.getInt("allowzero", 0) != 0)) ok = false;
            target.push_back(v);
          }
        } else {
          const ValueType* t = g.typeOf(piece);
          if (dynamic >= 0 || !t || !t->hasShape || t->dims != Shape{1}) ok = false;
          dynamic = static_cast<int>(target.size());
          target.push_back(-1);
        }
        if (!ok) break;
      }
      if (!ok || dynamic < 0) continue;
      Tensor shape(DataType::kInt64, {static_cast<int64_t>(target.size())});
      for (size_t k = 0; k < target.size(); ++k) shape.data<int64_t>()[k] = target[k];
      r.inputs[1] = fusion::addInitializer(g, r.name + "_shape", std::move(shape));
      std::string dims;
      for (int64_t v : target) dims += (dims.empty() ? "" : ",") + std::to_string(v);
      changes.push_back("Reshape '" + r.name + "': run-time target -> constant [" + dims + "] (entry " + std::to_string(dynamic) +
                        " inferred)");
    }
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("reshape_dynamic_dim",
                        "give a Reshape whose target has one run-time entry a constant target with -1 there", 250, ReshapeDynamicDim);

}  // namespace planforge
