// Conv -> [Add(per-channel bias)] -> [Add(residual)] -> [activation] becomes one
// planforge.FusedConv (TensorRT's conv + eltwise + activation epilogue fusion). A Conv
// followed only by a bias Add stays a Conv with the bias merged in.
#include "fusion_util.h"

namespace planforge {

namespace {

class FuseConvBiasActivation : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    fusion::rewriteToFixedPoint(g, ctx, changes, tryFuse);
  }

 private:
  static bool tryFuse(Graph& g, const fusion::UseMap& uses, size_t ci, std::vector<std::string>& changes) {
    const Node& conv = g.nodes[ci];
    if (!fusion::isOp(conv, "Conv") || conv.outputs.size() != 1 || conv.inputs.size() < 2) return false;
    const ValueType* yt = g.typeOf(conv.outputs[0]);
    if (!yt || !yt->hasShape || yt->dims.size() < 3 || yt->dims[1] < 0 || yt->dtype != DataType::kFloat) return false;
    const int64_t M = yt->dims[1];
    const size_t rank = yt->dims.size();
    const bool hasBias = conv.inputs.size() > 2 && !conv.inputs[2].empty();
    // A bias Add merges into the Conv bias when both are float32 constants.
    const bool biasMergeable = !hasBias || fusion::floatConst(g, conv.inputs[2]) != nullptr;
    fusion::Epilogue e = fusion::matchEpilogue(g, uses, conv.outputs[0], biasMergeable, [&](const std::string& c) {
      const Tensor* t = fusion::floatConst(g, c);
      return t && fusion::isPerAxisConst(*t, M, 1, rank);
    });
    if (e.nodes.empty()) return false;

    std::vector<size_t> fusedIdx{ci};
    fusedIdx.insert(fusedIdx.end(), e.nodes.begin(), e.nodes.end());
    Node fused = conv;
    fused.inputs.resize(3);
    if (!e.bias.empty()) {
      const Tensor& add = g.initializers.at(e.bias);
      Tensor b(DataType::kFloat, {M});
      for (int64_t m = 0; m < M; ++m) b.data<float>()[m] = add.data<float>()[add.numel() == 1 ? 0 : m];
      if (hasBias) {
        const Tensor& old = g.initializers.at(conv.inputs[2]);
        for (int64_t m = 0; m < M; ++m) b.data<float>()[m] += old.data<float>()[m];
      }
      fused.inputs[2] = fusion::addInitializer(g, conv.name + "_fused_bias", std::move(b));
    }
    if (fused.inputs[2].empty()) fused.inputs.resize(2);
    const bool epilogue = !e.residual.empty() || !e.act.name.empty();
    if (epilogue) {
      fused.opType = "FusedConv";
      fused.domain = fusion::kDomain;
      if (!e.residual.empty()) {
        fused.inputs.resize(3);
        fused.inputs.push_back(e.residual);
      }
      if (!e.act.name.empty()) fusion::setActivationAttrs(fused, e.act);
    }
    std::string name = conv.name;
    for (size_t k : e.nodes) {
      fusion::appendOriginalNames(fused, g.nodes[k]);
      name += " + " + g.nodes[k].name;
    }
    fused.name = g.uniqueNodeName(name);
    fused.outputs = {e.output};
    changes.push_back("fused " + fusion::nodeLabels(g, fusedIdx) + " into " + fused.opType + " '" + fused.name + "'" +
                      (e.act.name.empty() ? "" : " (activation " + e.act.name + ")"));
    if (epilogue) fusion::ensureDomain(g);
    // The fused layer takes the place of the chain's last node (all its inputs exist by then).
    g.nodes[e.nodes.back()] = std::move(fused);
    fusedIdx.pop_back();
    fusion::eraseNodes(g, fusedIdx);
    return true;
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("fuse_conv_bias_activation",
                        "fuse Conv with a following bias Add, residual Add and activation into one FusedConv layer", 600,
                        FuseConvBiasActivation);

}  // namespace planforge
