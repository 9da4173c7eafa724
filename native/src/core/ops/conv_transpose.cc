// ConvTranspose (1-D/2-D/3-D, groups, output_padding, output_shape, auto_pad):
// GEMM of W^T with the input, then col2im scatter-add.
#include <algorithm>

#include "elementwise.h"
#include "gemm_kernel.h"
#include "op_util.h"
#include "window.h"

namespace planforge {
namespace ops {

namespace {

std::vector<int64_t> kernelOf(const NodeContext& ctx, const Shape& w) {
  std::vector<int64_t> k = ctx.attrs.getInts("kernel_shape", {});
  std::vector<int64_t> fromW(w.size() > 2 ? w.begin() + 2 : w.end(), w.end());
  if (k.empty()) return fromW;
  if (k.size() != fromW.size()) attrError(ctx, "kernel_shape rank does not match the weights");
  return k;
}

std::vector<ValueInfo> inferConvTranspose(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 2, 3);
  const ValueInfo& x = info(ctx, in, 0);
  const ValueInfo& w = info(ctx, in, 1);
  if (!x.hasShape || !w.hasShape) return {unknownRank(x.dtype)};
  if (x.shape.size() < 3 || w.shape.size() != x.shape.size())
    shapeError(ctx, "X " + shapeToString(x.shape) + " and W " + shapeToString(w.shape) + " ranks do not fit");
  const int64_t group = ctx.attrs.getInt("group", 1);
  if (group <= 0) attrError(ctx, "group must be positive");
  if (x.shape[1] >= 0 && w.shape[0] >= 0 && x.shape[1] != w.shape[0])
    shapeError(ctx, "input channels " + std::to_string(x.shape[1]) + " != W dim 0 " + std::to_string(w.shape[0]));
  std::vector<int64_t> spatial(x.shape.begin() + 2, x.shape.end());
  Window win = transposeWindow(ctx, spatial, kernelOf(ctx, w.shape));
  Shape out{x.shape[0], w.shape[1] < 0 ? -1 : w.shape[1] * group};
  out.insert(out.end(), win.out.begin(), win.out.end());
  return {makeInfo(x.dtype, out)};
}

Tensor convTranspose(const NodeContext& ctx, const Tensor& xIn, const Tensor& wIn, const Tensor* bIn) {
  requireFloat(ctx, xIn, "X");
  const Tensor x = toFloat32(xIn);
  const Tensor w = toFloat32(wIn);
  if (x.shape.size() < 3 || w.shape.size() != x.shape.size())
    shapeError(ctx, "X " + shapeToString(x.shape) + " and W " + shapeToString(w.shape) + " ranks do not fit");
  const int64_t group = ctx.attrs.getInt("group", 1);
  const int64_t N = x.shape[0], C = x.shape[1];
  if (group <= 0 || w.shape[0] != C || C % group != 0)
    shapeError(ctx, "channels do not fit group " + std::to_string(group) + ": X " + shapeToString(x.shape) + ", W " +
                        shapeToString(w.shape));
  const int64_t Mg = w.shape[1], M = Mg * group, Cg = C / group;
  std::vector<int64_t> spatial(x.shape.begin() + 2, x.shape.end());
  Window win = transposeWindow(ctx, spatial, kernelOf(ctx, w.shape));
  Window3 w3 = toWindow3(ctx, win);
  Shape outShape{N, M};
  outShape.insert(outShape.end(), win.out.begin(), win.out.end());
  Tensor y(DataType::kFloat, outShape);
  std::vector<float> bias;
  if (bIn) {
    if (bIn->numel() != M) shapeError(ctx, "bias has " + std::to_string(bIn->numel()) + " values, expected " + std::to_string(M));
    bias = toFloats(*bIn);
  }
  const int64_t IS = w3.inSize(), OS = w3.outSize(), KS = w3.kSize();
  std::vector<float> col(static_cast<size_t>(Mg * KS * IS));
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  float* yp = y.data<float>();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < group; ++g) {
      // col[Mg*KS, IS] = W_g^T, with W_g = [Cg, Mg*KS], times X_g [Cg, IS].
      sgemm(true, false, Mg * KS, IS, Cg, 1.f, wp + g * Cg * Mg * KS, Mg * KS, xp + (n * C + g * Cg) * IS, IS, 0.f,
            col.data(), IS);
      col2imAdd(w3, Mg, col.data(), yp + (n * M + g * Mg) * OS);
    }
    if (!bias.empty())
      for (int64_t m = 0; m < M; ++m) {
        float* row = yp + (n * M + m) * OS;
        for (int64_t i = 0; i < OS; ++i) row[i] += bias[m];
      }
  }
  return castFromFloat32(y, xIn.dtype);
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"ConvTranspose", inferConvTranspose, [](const NodeContext& ctx, const Inputs& in) {
                              requireInputs(ctx, in.size(), 2, 3);
                              return std::vector<Tensor>{convTranspose(ctx, input(ctx, in, 0), input(ctx, in, 1),
                                                                       hasInput(in, 2) ? in[2] : nullptr)};
                            }});

}  // namespace ops
}  // namespace planforge
