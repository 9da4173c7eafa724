// MatMul / Gemm with constant weights -> [Add(constant bias)] -> [Reshape / Transpose / Squeeze /
// Unsqueeze / Flatten / Identity]* -> Mul(scalar constant) becomes the MatMul with scaled weights:
// W' = W * c and B' = B * c (a Gemm scales alpha and beta instead). All the ops in between are
// linear, so the scale commutes with them. Transformer exports scale the attention's Q and K this way
// after the head reshape (dynamo: q * d^-1/4 and k^T * d^-1/4); folded, those two Muls per layer
// (and their FP16 roundings) disappear. The scaled weights get new initializer names.
#include "fusion_util.h"

namespace planforge {

namespace {

bool isLinearView(const Node& n) {
  for (const char* op : {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity"})
    if (fusion::isOp(n, op)) return true;
  return false;
}

class FoldMatMulScale : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    fusion::rewriteToFixedPoint(g, ctx, changes, tryFold);
  }

 private:
  static bool tryFold(Graph& g, const fusion::UseMap& uses, size_t mi, std::vector<std::string>& changes) {
    const Node& mul = g.nodes[mi];
    if (!fusion::isOp(mul, "Mul") || mul.inputs.size() != 2 || mul.outputs.size() != 1 || uses.isGraphOutput(mul.outputs[0])) return false;
    size_t dataIdx = 0;
    const Tensor* c = fusion::floatConst(g, mul.inputs[1]);
    if (!c) {
      c = fusion::floatConst(g, mul.inputs[0]);
      dataIdx = 1;
    }
    if (!c || c->numel() != 1 || fusion::floatConst(g, mul.inputs[dataIdx])) return false;
    const float scale = c->data<float>()[0];
    // Walk back through single-use views to a bias Add and / or the GEMM.
    std::string v = mul.inputs[dataIdx];
    int views = 0, p = -1;
    for (;;) {
      if (!uses.singleUse(v) || (p = g.producerIndex(v)) < 0) return false;
      const Node& n = g.nodes[static_cast<size_t>(p)];
      if (!isLinearView(n) || n.inputs.empty() || n.outputs.size() != 1) break;
      ++views;
      v = n.inputs[0];
    }
    size_t gi = static_cast<size_t>(p);
    int addIdx = -1;
    std::string biasName;
    if (fusion::isOp(g.nodes[gi], "Add") && g.nodes[gi].inputs.size() == 2) {
      const Node& add = g.nodes[gi];
      const int k = fusion::floatConst(g, add.inputs[1]) ? 1 : fusion::floatConst(g, add.inputs[0]) ? 0 : -1;
      if (k < 0) return false;
      addIdx = static_cast<int>(gi);
      biasName = add.inputs[static_cast<size_t>(k)];
      v = add.inputs[static_cast<size_t>(1 - k)];
      if (!uses.singleUse(v) || (p = g.producerIndex(v)) < 0) return false;
      gi = static_cast<size_t>(p);
    }
    const Node& gemm = g.nodes[gi];
    const bool isGemm = fusion::isOp(gemm, "Gemm");
    if (!(isGemm || fusion::isOp(gemm, "MatMul")) || gemm.outputs.size() != 1 || gemm.inputs.size() < 2) return false;
    const Tensor* w = fusion::floatConst(g, gemm.inputs[1]);
    if (!w || w->shape.size() != 2) return false;

    Node scaled = gemm;
    if (isGemm) {
      scaled.attrs.values["alpha"] = fusion::floatAttr(gemm.attrs.getFloat("alpha", 1.f) * scale);
      scaled.attrs.values["beta"] = fusion::floatAttr(gemm.attrs.getFloat("beta", 1.f) * scale);
    } else {
      Tensor nw = *w;
      for (int64_t i = 0; i < nw.numel(); ++i) nw.data<float>()[i] *= scale;
      scaled.inputs[1] = fusion::addInitializer(g, gemm.inputs[1] + "_scaled", std::move(nw));
    }
    fusion::appendOriginalNames(scaled, mul);
    g.nodes[gi] = std::move(scaled);
    if (addIdx >= 0) {
      Tensor nb = *fusion::floatConst(g, biasName);
      for (int64_t i = 0; i < nb.numel(); ++i) nb.data<float>()[i] *= scale;
      Node& add = g.nodes[static_cast<size_t>(addIdx)];
      for (auto& in : add.inputs)
        if (in == biasName) in = fusion::addInitializer(g, biasName + "_scaled", std::move(nb));
    }
    const std::string label = fusion::nodeLabelPair(g.nodes[gi], mul);
    if (!bypassNode(g, mi, dataIdx)) return false;
    changes.push_back("folded the scalar " + label + " into the weights" + (addIdx >= 0 ? " and bias" : "") + " through " +
                      std::to_string(views) + " view(s)");
    return true;
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("fold_matmul_scale",
                        "fold a scalar Mul after a MatMul / Gemm with constant weights (through bias Add and reshapes) into the weights",
                        450, FoldMatMulScale);

}  // namespace planforge
