// Conv [+ bias] -> BatchNormalization (inference mode, constant parameters) becomes one Conv:
// with s = scale / sqrt(var + eps), W'[m] = W[m] * s[m] and B' = (B - mean) * s + bias_bn.
// A per-output-channel constant Mul after a Conv (BatchNormalization exported as Mul + Add by
// old converters, TensorRT's "scale" layer) folds the same way: W'[m] = W[m] * s[m], B' = B * s;
// the Add that follows is a bias for fuse_conv_bias_activation.
// The folded weights get new initializer names (the originals may be shared with other nodes).
#include <cmath>

#include "fusion_util.h"

namespace planforge {

namespace {

class FoldConvBatchNorm : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    fusion::rewriteToFixedPoint(g, ctx, changes, tryFold);
  }

 private:
  static bool tryFold(Graph& g, const fusion::UseMap& uses, size_t ci, std::vector<std::string>& changes) {
    const Node& conv = g.nodes[ci];
    if (!fusion::isOp(conv, "Conv") || conv.outputs.size() != 1 || conv.inputs.size() < 2) return false;
    const int bi = uses.soleUser(conv.outputs[0]);
    if (bi < 0) return false;
    const Node& bn = g.nodes[static_cast<size_t>(bi)];
    if (fusion::isOp(bn, "Mul")) return tryFoldScale(g, ci, static_cast<size_t>(bi), changes);
    if (!fusion::isOp(bn, "BatchNormalization") || bn.inputs.size() != 5 || bn.inputs[0] != conv.outputs[0]) return false;
    if (bn.attrs.getInt("training_mode", 0) != 0) return false;
    // Extra outputs (running mean/var) only exist in training mode; refuse if any is used.
    for (size_t k = 1; k < bn.outputs.size(); ++k)
      if (!bn.outputs[k].empty() && (!uses.users(bn.outputs[k]).empty() || uses.isGraphOutput(bn.outputs[k]))) return false;
    const Tensor* w = fusion::floatConst(g, conv.inputs[1]);
    const Tensor* b = conv.inputs.size() > 2 && !conv.inputs[2].empty() ? fusion::floatConst(g, conv.inputs[2]) : nullptr;
    if (!w || w->shape.size() < 3 || (conv.inputs.size() > 2 && !conv.inputs[2].empty() && !b)) return false;
    const int64_t M = w->shape[0];
    const Tensor* scale = fusion::floatConst(g, bn.inputs[1]);
    const Tensor* shift = fusion::floatConst(g, bn.inputs[2]);
    const Tensor* mean = fusion::floatConst(g, bn.inputs[3]);
    const Tensor* var = fusion::floatConst(g, bn.inputs[4]);
    for (const Tensor* t : {scale, shift, mean, var})
      if (!t || t->numel() != M) return false;
    if (b && b->numel() != M) return false;
    const double eps = bn.attrs.getFloat("epsilon", 1e-5f);

    Tensor nw = *w;
    Tensor nb(DataType::kFloat, {M});
    const int64_t per = w->numel() / M;
    for (int64_t m = 0; m < M; ++m) {
      const double s = scale->data<float>()[m] / std::sqrt(static_cast<double>(var->data<float>()[m]) + eps);
      float* wm = nw.data<float>() + m * per;
      for (int64_t k = 0; k < per; ++k) wm[k] = static_cast<float>(wm[k] * s);
      const double bias = b ? b->data<float>()[m] : 0.0;
      nb.data<float>()[m] = static_cast<float>((bias - mean->data<float>()[m]) * s + shift->data<float>()[m]);
    }

    Node fused = conv;
    fused.inputs.resize(3);
    fused.inputs[1] = fusion::addInitializer(g, conv.inputs[1] + "_bn", std::move(nw));
    fused.inputs[2] = fusion::addInitializer(g, (b ? conv.inputs[2] : conv.name + "_bias") + "_bn", std::move(nb));
    fused.outputs = {bn.outputs[0]};
    fusion::appendOriginalNames(fused, bn);
    changes.push_back("folded " + fusion::nodeLabelPair(conv, bn) + " into the Conv weights");
    g.nodes[ci] = std::move(fused);
    fusion::eraseNodes(g, {static_cast<size_t>(bi)});
    return true;
  }

  // Conv -> Mul(constant with one value per output channel, or a scalar).
  static bool tryFoldScale(Graph& g, size_t ci, size_t mi, std::vector<std::string>& changes) {
    const Node& conv = g.nodes[ci];
    const Node& mul = g.nodes[mi];
    const Tensor* w = fusion::floatConst(g, conv.inputs[1]);
    const bool hasBias = conv.inputs.size() > 2 && !conv.inputs[2].empty();
    const Tensor* b = hasBias ? fusion::floatConst(g, conv.inputs[2]) : nullptr;
    if (!w || w->shape.size() < 3 || (hasBias && !b) || mul.outputs.size() != 1) return false;
    const Tensor* s = fusion::floatConst(g, fusion::otherInput(mul, conv.outputs[0]));
    const int64_t M = w->shape[0];
    if (!s || s->shape.size() > w->shape.size() || (s->numel() != 1 && !fusion::isPerAxisConst(*s, M, 1, w->shape.size()))) return false;
    if (b && b->numel() != M) return false;
    Tensor nw = *w;
    Tensor nb(DataType::kFloat, {M});
    const int64_t per = w->numel() / M;
    for (int64_t m = 0; m < M; ++m) {
      const float f = s->data<float>()[s->numel() == 1 ? 0 : m];
      float* wm = nw.data<float>() + m * per;
      for (int64_t k = 0; k < per; ++k) wm[k] *= f;
      nb.data<float>()[m] = b ? b->data<float>()[m] * f : 0.f;
    }
    Node fused = conv;
    fused.inputs.resize(hasBias ? 3 : 2);
    fused.inputs[1] = fusion::addInitializer(g, conv.inputs[1] + "_scaled", std::move(nw));
    if (hasBias) fused.inputs[2] = fusion::addInitializer(g, conv.inputs[2] + "_scaled", std::move(nb));
    fused.outputs = {mul.outputs[0]};
    fusion::appendOriginalNames(fused, mul);
    changes.push_back("folded " + fusion::nodeLabelPair(conv, mul) + " (per-channel scale) into the Conv weights");
    g.nodes[ci] = std::move(fused);
    fusion::eraseNodes(g, {mi});
    return true;
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("fold_conv_batchnorm", "fold inference BatchNormalization (or a per-channel Mul) into the preceding Conv's weights and bias", 500,
                        FoldConvBatchNorm);

}  // namespace planforge
