// planforge.FusedGemm (Gemm + optional residual Add + activation) and planforge.FusedMatMul
// (MatMul + bias Add + optional residual Add + activation): TensorRT fuses these into one
// GEMM with an epilogue. FusedGemm inputs: A, B, C (optional), Residual (optional); Gemm's
// attributes. FusedMatMul inputs: A, B, Bias (optional, broadcast to the output), Residual
// (optional). Both take `activation`, `activation_alpha`, `activation_beta`. B/C/Bias may be
// float16 (FP16 plans): math is float32.
#include "elementwise.h"
#include "fused_activation.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

const OpDef& baseDef(const NodeContext& ctx, const char* op) {
  const OpDef* d = OpRegistry::instance().find(op);
  if (!d) throw BuildError(ErrorCode::kUnsupportedOp, ctx.opType + " '" + ctx.name + "' needs the " + op + " kernel");
  return *d;
}

std::vector<ValueInfo> inferFusedGemm(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 2, 4);
  fusedEpilogue(ctx);
  Infos base(in.begin(), in.begin() + std::min<size_t>(in.size(), 3));
  if (base.size() == 3 && !base[2].present) base.pop_back();
  std::vector<ValueInfo> out = baseDef(ctx, "Gemm").infer(ctx, base);
  if (in.size() == 4) checkResidualInfo(ctx, out[0], in[3]);
  return out;
}

std::vector<Tensor> runFusedGemm(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 2, 4);
  const FusedEpilogue e = fusedEpilogue(ctx);
  const Tensor& a = input(ctx, in, 0);
  Inputs base{in[0], in[1]};
  if (hasInput(in, 2)) base.push_back(in[2]);
  Tensor y = toFloat32(baseDef(ctx, "Gemm").run(ctx, base).at(0));
  applyEpilogue(ctx, e, y, hasInput(in, 3) ? in[3] : nullptr);
  return {castFromFloat32(y, a.dtype)};
}

std::vector<ValueInfo> inferFusedMatMul(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 2, 4);
  fusedEpilogue(ctx);
  Infos base{in[0], in[1]};
  base[1].dtype = base[0].dtype;  // B may be stored in another float type (FP16 weights)
  std::vector<ValueInfo> out = baseDef(ctx, "MatMul").infer(ctx, base);
  if (hasInfo(in, 2) && out[0].hasShape && in[2].hasShape) {
    const Shape b = broadcastShapes(ctx, out[0].shape, in[2].shape);
    if (b.size() != out[0].shape.size())
      shapeError(ctx, "bias " + shapeToString(in[2].shape) + " does not broadcast to the output " + shapeToString(out[0].shape));
  }
  if (in.size() == 4) checkResidualInfo(ctx, out[0], in[3]);
  return out;
}

std::vector<Tensor> runFusedMatMul(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 2, 4);
  const FusedEpilogue e = fusedEpilogue(ctx);
  const Tensor& a = input(ctx, in, 0);
  const Tensor& b = input(ctx, in, 1);
  requireFloat(ctx, a, "A");
  requireFloat(ctx, b, "B");
  const Tensor a32 = toFloat32(a), b32 = toFloat32(b);
  Tensor y = toFloat32(baseDef(ctx, "MatMul").run(ctx, {&a32, &b32}).at(0));
  if (hasInput(in, 2)) {
    const Tensor bias = toFloat32(*in[2]);
    if (broadcastShapes(ctx, y.shape, bias.shape) != y.shape)
      shapeError(ctx, "bias " + shapeToString(bias.shape) + " does not broadcast to the output " + shapeToString(y.shape));
    broadcastApply<float, float, float>(y, bias, y, [](float v, float c) { return v + c; });
  }
  applyEpilogue(ctx, e, y, hasInput(in, 3) ? in[3] : nullptr);
  return {castFromFloat32(y, a.dtype)};
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"FusedGemm", inferFusedGemm, runFusedGemm});
PLANFORGE_REGISTER_OP(OpDef{"FusedMatMul", inferFusedMatMul, runFusedMatMul});

}  // namespace ops
}  // namespace planforge
