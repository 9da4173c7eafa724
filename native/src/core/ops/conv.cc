// Conv (1-D/2-D/3-D, groups, dilations, pads, auto_pad) via im2col + the shared GEMM.
#include <algorithm>
#include <cstring>

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
  for (size_t i = 0; i < k.size(); ++i)
    if (fromW[i] >= 0 && k[i] != fromW[i]) attrError(ctx, "kernel_shape does not match the weights");
  return k;
}

std::vector<ValueInfo> inferConv(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 2, 3);
  const ValueInfo& x = info(ctx, in, 0);
  const ValueInfo& w = info(ctx, in, 1);
  if (!x.hasShape || !w.hasShape) return {unknownRank(x.dtype)};
  if (x.shape.size() < 3 || w.shape.size() != x.shape.size())
    shapeError(ctx, "X " + shapeToString(x.shape) + " and W " + shapeToString(w.shape) + " ranks do not fit");
  const int64_t group = ctx.attrs.getInt("group", 1);
  if (group <= 0) attrError(ctx, "group must be positive");
  if (x.shape[1] >= 0 && w.shape[1] >= 0 && x.shape[1] != w.shape[1] * group)
    shapeError(ctx, "input channels " + std::to_string(x.shape[1]) + " != W channels " + std::to_string(w.shape[1]) +
                        " x group " + std::to_string(group));
  std::vector<int64_t> spatial(x.shape.begin() + 2, x.shape.end());
  Window win = forwardWindow(ctx, spatial, kernelOf(ctx, w.shape), false);
  Shape out{x.shape[0], w.shape[0]};
  out.insert(out.end(), win.out.begin(), win.out.end());
  return {makeInfo(x.dtype, out)};
}

Tensor conv(const NodeContext& ctx, const Tensor& xIn, const Tensor& wIn, const Tensor* bIn) {
  requireFloat(ctx, xIn, "X");
  const Tensor x = toFloat32(xIn);
  const Tensor w = toFloat32(wIn);
  if (x.shape.size() < 3 || w.shape.size() != x.shape.size())
    shapeError(ctx, "X " + shapeToString(x.shape) + " and W " + shapeToString(w.shape) + " ranks do not fit");
  const int64_t group = ctx.attrs.getInt("group", 1);
  const int64_t N = x.shape[0], C = x.shape[1], M = w.shape[0];
  if (group <= 0 || C % group != 0 || M % group != 0 || w.shape[1] * group != C)
    shapeError(ctx, "channels do not fit group " + std::to_string(group) + ": X " + shapeToString(x.shape) + ", W " +
                        shapeToString(w.shape));
  std::vector<int64_t> spatial(x.shape.begin() + 2, x.shape.end());
  Window win = forwardWindow(ctx, spatial, kernelOf(ctx, w.shape), false);
  Window3 w3 = toWindow3(ctx, win);
  Shape outShape{N, M};
  outShape.insert(outShape.end(), win.out.begin(), win.out.end());
  Tensor y(DataType::kFloat, outShape);
  std::vector<float> bias;
  if (bIn) {
    if (bIn->numel() != M) shapeError(ctx, "bias has " + std::to_string(bIn->numel()) + " values, expected " + std::to_string(M));
    bias = toFloats(*bIn);
  }
  const int64_t Cg = C / group, Mg = M / group;
  const int64_t IS = w3.inSize(), OS = w3.outSize(), KS = w3.kSize();
  // A 1x1 window with unit stride and no padding reads the input as is.
  bool direct = KS == 1;
  for (int i = 0; i < 3; ++i) direct = direct && w3.s[i] == 1 && w3.pb[i] == 0 && w3.in[i] == w3.out[i];
  std::vector<float> col(direct ? 0 : static_cast<size_t>(Cg * KS * OS));
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  float* yp = y.data<float>();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < group; ++g) {
      const float* xg = xp + (n * C + g * Cg) * IS;
      const float* colp = xg;
      if (!direct) {
        im2col(w3, Cg, xg, col.data());
        colp = col.data();
      }
      float* yg = yp + (n * M + g * Mg) * OS;
      sgemm(false, false, Mg, OS, Cg * KS, 1.f, wp + g * Mg * Cg * KS, Cg * KS, colp, OS, 0.f, yg, OS);
    }
    if (!bias.empty())
      for (int64_t m = 0; m < M; ++m) {
        float* row = yp + (n * M + m) * OS;
        const float b = bias[m];
        for (int64_t i = 0; i < OS; ++i) row[i] += b;
      }
  }
  return castFromFloat32(y, xIn.dtype);
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"Conv", inferConv, [](const NodeContext& ctx, const Inputs& in) {
                              requireInputs(ctx, in.size(), 2, 3);
                              return std::vector<Tensor>{conv(ctx, input(ctx, in, 0), input(ctx, in, 1),
                                                              hasInput(in, 2) ? in[2] : nullptr)};
                            }});

}  // namespace ops
}  // namespace planforge
