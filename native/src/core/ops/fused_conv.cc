// planforge.FusedConv: Conv + bias + optional residual Add + activation in one layer
// (TensorRT's "ConvActFusion" / conv+eltwise+act epilogue fusion). Inputs: X, W, B (optional),
// Residual (optional, same shape as the output). Attributes: Conv's, plus `activation`,
// `activation_alpha`, `activation_beta` (see fused_activation.h). W/B may be float16 (FP16 plans).
#include "elementwise.h"
#include "fused_activation.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

const OpDef& convDef(const NodeContext& ctx) {
  const OpDef* d = OpRegistry::instance().find("Conv");
  if (!d) throw BuildError(ErrorCode::kUnsupportedOp, "FusedConv '" + ctx.name + "' needs the Conv kernel");
  return *d;
}

std::vector<ValueInfo> inferFusedConv(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 2, 4);
  fusedEpilogue(ctx);  // validates the activation name at build time
  Infos base(in.begin(), in.begin() + std::min<size_t>(in.size(), 3));
  if (base.size() == 3 && !base[2].present) base.pop_back();
  std::vector<ValueInfo> out = convDef(ctx).infer(ctx, base);
  if (in.size() == 4) checkResidualInfo(ctx, out[0], in[3]);
  return out;
}

std::vector<Tensor> runFusedConv(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 2, 4);
  const FusedEpilogue e = fusedEpilogue(ctx);
  const Tensor& x = input(ctx, in, 0);
  Inputs base{in[0], in[1]};
  if (hasInput(in, 2)) base.push_back(in[2]);
  std::vector<Tensor> r = convDef(ctx).run(ctx, base);
  Tensor y = toFloat32(r.at(0));
  applyEpilogue(ctx, e, y, hasInput(in, 3) ? in[3] : nullptr);
  return {castFromFloat32(y, x.dtype)};
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"FusedConv", inferFusedConv, runFusedConv});

}  // namespace ops
}  // namespace planforge
