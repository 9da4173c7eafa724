// Gemm / MatMul -> [Add(constant bias)] -> [Add(residual)] -> [activation] becomes one layer:
// planforge.FusedGemm or planforge.FusedMatMul (TensorRT fuses the bias, the residual sum and
// the activation into the GEMM epilogue). A Gemm without C followed only by a bias Add stays a
// Gemm with the bias as C.
#include "fusion_util.h"

namespace planforge {

namespace {

// The constant c broadcasts into `out` without changing its shape.
bool broadcastsInto(const Shape& c, const ValueType& out) {
  if (!out.hasShape || c.size() > out.dims.size()) return false;
  const size_t offset = out.dims.size() - c.size();
  for (size_t d = 0; d < c.size(); ++d) {
    const int64_t o = out.dims[d + offset];
    if (c[d] != 1 && !(o >= 0 && c[d] == o)) return false;
  }
  return true;
}

class FuseGemmBiasActivation : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    fusion::rewriteToFixedPoint(g, ctx, changes, tryFuse);
  }

 private:
  static bool tryFuse(Graph& g, const fusion::UseMap& uses, size_t bi, std::vector<std::string>& changes) {
    const Node& base = g.nodes[bi];
    const bool isGemm = fusion::isOp(base, "Gemm");
    if (!(isGemm || fusion::isOp(base, "MatMul")) || base.outputs.size() != 1 || base.inputs.size() < 2) return false;
    const ValueType* yt = g.typeOf(base.outputs[0]);
    if (!yt || !yt->hasShape || yt->dtype != DataType::kFloat) return false;
    const bool hasC = isGemm && base.inputs.size() > 2 && !base.inputs[2].empty();
    fusion::Epilogue e = fusion::matchEpilogue(g, uses, base.outputs[0], !hasC, [&](const std::string& c) {
      const Tensor* t = fusion::floatConst(g, c);
      return t && broadcastsInto(t->shape, *yt);
    });
    if (e.nodes.empty()) return false;

    std::vector<size_t> fusedIdx{bi};
    fusedIdx.insert(fusedIdx.end(), e.nodes.begin(), e.nodes.end());
    Node fused = base;
    const bool epilogue = !e.residual.empty() || !e.act.name.empty();
    if (isGemm) {
      fused.inputs.resize(3);
      if (!e.bias.empty()) {
        fused.inputs[2] = e.bias;
        fused.attrs.values["beta"] = fusion::floatAttr(1.f);
      }
      if (epilogue) fused.opType = "FusedGemm";
    } else {
      fused.inputs.resize(3);
      fused.inputs[2] = e.bias;
      fused.opType = "FusedMatMul";
    }
    if (!e.residual.empty()) fused.inputs.push_back(e.residual);
    while (!fused.inputs.empty() && fused.inputs.back().empty()) fused.inputs.pop_back();
    if (fused.opType != base.opType) fused.domain = fusion::kDomain;
    if (!e.act.name.empty()) fusion::setActivationAttrs(fused, e.act);
    std::string name = base.name;
    for (size_t k : e.nodes) {
      fusion::appendOriginalNames(fused, g.nodes[k]);
      name += " + " + g.nodes[k].name;
    }
    fused.name = g.uniqueNodeName(name);
    fused.outputs = {e.output};
    changes.push_back("fused " + fusion::nodeLabels(g, fusedIdx) + " into " + fused.opType + " '" + fused.name + "'" +
                      (e.act.name.empty() ? "" : " (activation " + e.act.name + ")"));
    if (!fused.domain.empty()) fusion::ensureDomain(g);
    g.nodes[e.nodes.back()] = std::move(fused);
    fusedIdx.pop_back();
    fusion::eraseNodes(g, fusedIdx);
    return true;
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("fuse_gemm_bias_activation",
                        "fuse Gemm/MatMul with a following bias Add, residual Add and activation into one layer", 610,
                        FuseGemmBiasActivation);

}  // namespace planforge
