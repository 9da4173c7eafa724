// Integer (QOperator-format) ops: ConvInteger, QLinearConv, QLinearMatMul. Accumulation is exact
// (zero-point-centred 8-bit values, products summed in double); requantization multiplies by
// the float scale ratio and rounds half to even, as the reference runtimes do.
#include <cmath>

#include "op_util.h"
#include "window.h"

namespace planforge {
namespace ops {

namespace {

void requireInt8(const NodeContext& ctx, const Tensor& t, const char* what) {
  if (t.dtype != DataType::kUint8 && t.dtype != DataType::kInt8)
    shapeError(ctx, std::string(what) + " must be uint8 or int8, got " + dataTypeName(t.dtype));
}

// Zero point of `count` channels: a scalar broadcasts, otherwise one per channel.
std::vector<double> zeroPoints(const NodeContext& ctx, const Tensor* zp, int64_t count, DataType expect, const char* what) {
  std::vector<double> z(static_cast<size_t>(count), 0.0);
  if (!zp) return z;
  if (zp->dtype != expect) shapeError(ctx, std::string(what) + " dtype differs from its input");
  if (zp->numel() == 1) {
    std::fill(z.begin(), z.end(), static_cast<double>(zp->getInt64(0)));
  } else if (zp->numel() == count) {
    for (int64_t i = 0; i < count; ++i) z[i] = static_cast<double>(zp->getInt64(i));
  } else {
    shapeError(ctx, std::string(what) + " must be a scalar or have " + std::to_string(count) + " values");
  }
  return z;
}

std::vector<float> scales(const NodeContext& ctx, const Tensor& s, int64_t count, const char* what) {
  std::vector<float> v = toFloats(s);
  if (v.size() == 1) return std::vector<float>(static_cast<size_t>(count), v[0]);
  if (static_cast<int64_t>(v.size()) != count)
    shapeError(ctx, std::string(what) + " must be a scalar or have " + std::to_string(count) + " values");
  return v;
}

// Integer convolution; returns exact accumulators [N, M, out...] as doubles.
std::vector<double> convAccumulate(const NodeContext& ctx, const Tensor& x, const Tensor& w, const std::vector<double>& xzp,
                                   const std::vector<double>& wzp, Shape* outShape) {
  if (x.shape.size() < 3 || w.shape.size() != x.shape.size())
    shapeError(ctx, "X " + shapeToString(x.shape) + " and W " + shapeToString(w.shape) + " ranks do not fit");
  const int64_t group = ctx.attrs.getInt("group", 1);
  const int64_t N = x.shape[0], C = x.shape[1], M = w.shape[0];
  if (group <= 0 || C % group != 0 || M % group != 0 || w.shape[1] * group != C)
    shapeError(ctx, "channels do not fit group " + std::to_string(group));
  std::vector<int64_t> kernel = ctx.attrs.getInts("kernel_shape", {});
  if (kernel.empty()) kernel.assign(w.shape.begin() + 2, w.shape.end());
  std::vector<int64_t> spatial(x.shape.begin() + 2, x.shape.end());
  Window win = forwardWindow(ctx, spatial, kernel, false);
  Window3 w3 = toWindow3(ctx, win);
  *outShape = {N, M};
  outShape->insert(outShape->end(), win.out.begin(), win.out.end());
  const int64_t Cg = C / group, Mg = M / group, IS = w3.inSize(), OS = w3.outSize(), KS = w3.kSize();
  // Centred values are small integers: exact in float, so the float im2col can lay them out.
  std::vector<float> xc(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) xc[i] = static_cast<float>(x.getInt64(i) - xzp[0]);
  std::vector<float> col(static_cast<size_t>(Cg * KS * OS));
  std::vector<double> acc(static_cast<size_t>(shapeNumel(*outShape)), 0.0);
  const int64_t wPer = Cg * KS;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < group; ++g) {
      im2col(w3, Cg, xc.data() + (n * C + g * Cg) * IS, col.data());
      for (int64_t m = 0; m < Mg; ++m) {
        const int64_t mm = g * Mg + m;
        double* dst = acc.data() + (n * M + mm) * OS;
        for (int64_t k = 0; k < wPer; ++k) {
          const double wv = static_cast<double>(w.getInt64(mm * wPer + k)) - wzp[mm];
          if (wv == 0) continue;
          const float* src = col.data() + k * OS;
          for (int64_t o = 0; o < OS; ++o) dst[o] += wv * src[o];
        }
      }
    }
  return acc;
}

Tensor requantize(const std::vector<double>& acc, const Shape& shape, int64_t channels, int64_t inner,
                  const std::vector<float>& multiplier, double zp, DataType dt) {
  Tensor y(dt, shape);
  const double lo = dt == DataType::kUint8 ? 0 : -128, hi = dt == DataType::kUint8 ? 255 : 127;
  for (int64_t i = 0; i < static_cast<int64_t>(acc.size()); ++i) {
    const int64_t c = channels > 1 ? (i / inner) % channels : 0;
    const float scaled = static_cast<float>(acc[i]) * multiplier[c];
    double v = std::nearbyint(static_cast<double>(scaled)) + zp;
    v = std::min(std::max(v, lo), hi);
    setFromDouble(y, i, v);
  }
  return y;
}

Tensor convInteger(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 2, 4);
  const Tensor& x = input(ctx, in, 0);
  const Tensor& w = input(ctx, in, 1);
  requireInt8(ctx, x, "x");
  requireInt8(ctx, w, "w");
  if (w.shape.empty()) shapeError(ctx, "w must be at least 3-D");
  std::vector<double> xzp = zeroPoints(ctx, hasInput(in, 2) ? in[2] : nullptr, 1, x.dtype, "x_zero_point");
  std::vector<double> wzp = zeroPoints(ctx, hasInput(in, 3) ? in[3] : nullptr, w.shape[0], w.dtype, "w_zero_point");
  Shape outShape;
  std::vector<double> acc = convAccumulate(ctx, x, w, xzp, wzp, &outShape);
  Tensor y(DataType::kInt32, outShape);
  for (size_t i = 0; i < acc.size(); ++i) y.data<int32_t>()[i] = static_cast<int32_t>(acc[i]);
  return y;
}

Tensor qlinearConv(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 8, 9);
  const Tensor& x = input(ctx, in, 0);
  const Tensor& w = input(ctx, in, 3);
  requireInt8(ctx, x, "x");
  requireInt8(ctx, w, "w");
  if (w.shape.empty()) shapeError(ctx, "w must be at least 3-D");
  const int64_t M = w.shape[0];
  const Tensor& yzpT = input(ctx, in, 7);
  std::vector<double> xzp = zeroPoints(ctx, &input(ctx, in, 2), 1, x.dtype, "x_zero_point");
  std::vector<double> wzp = zeroPoints(ctx, &input(ctx, in, 5), M, w.dtype, "w_zero_point");
  const float xs = scales(ctx, input(ctx, in, 1), 1, "x_scale")[0];
  std::vector<float> ws = scales(ctx, input(ctx, in, 4), M, "w_scale");
  const float ys = scales(ctx, input(ctx, in, 6), 1, "y_scale")[0];
  Shape outShape;
  std::vector<double> acc = convAccumulate(ctx, x, w, xzp, wzp, &outShape);
  const int64_t OS = shapeNumel(Shape(outShape.begin() + 2, outShape.end()));
  if (hasInput(in, 8)) {
    const Tensor& b = *in[8];
    if (b.dtype != DataType::kInt32 || b.numel() != M) shapeError(ctx, "B must be int32 with one value per output channel");
    for (size_t i = 0; i < acc.size(); ++i) acc[i] += b.data<int32_t>()[(static_cast<int64_t>(i) / OS) % M];
  }
  std::vector<float> mult(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) mult[m] = xs * ws[m] / ys;
  return requantize(acc, outShape, M, OS, mult, static_cast<double>(yzpT.getInt64(0)), yzpT.dtype);
}

Tensor qlinearMatMul(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 8, 8);
  const Tensor& a = input(ctx, in, 0);
  const Tensor& b = input(ctx, in, 3);
  requireInt8(ctx, a, "a");
  requireInt8(ctx, b, "b");
  if (a.shape.size() < 2 || b.shape.size() != 2)
    shapeError(ctx, "supports a [..., M, K] times a 2-D b [K, N], got " + shapeToString(a.shape) + " and " + shapeToString(b.shape));
  const int64_t K = a.shape.back(), N = b.shape[1];
  if (b.shape[0] != K) shapeError(ctx, "inner dimensions differ");
  const Tensor& yzpT = input(ctx, in, 7);
  std::vector<double> azp = zeroPoints(ctx, &input(ctx, in, 2), 1, a.dtype, "a_zero_point");
  std::vector<double> bzp = zeroPoints(ctx, &input(ctx, in, 5), N, b.dtype, "b_zero_point");
  const float as = scales(ctx, input(ctx, in, 1), 1, "a_scale")[0];
  std::vector<float> bs = scales(ctx, input(ctx, in, 4), N, "b_scale");
  const float ys = scales(ctx, input(ctx, in, 6), 1, "y_scale")[0];
  Shape out = a.shape;
  out.back() = N;
  const int64_t rows = a.numel() / std::max<int64_t>(K, 1);
  std::vector<double> acc(static_cast<size_t>(rows * N), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k) {
      const double av = static_cast<double>(a.getInt64(r * K + k)) - azp[0];
      for (int64_t j = 0; j < N; ++j) acc[r * N + j] += av * (static_cast<double>(b.getInt64(k * N + j)) - bzp[j]);
    }
  std::vector<float> mult(static_cast<size_t>(N));
  for (int64_t j = 0; j < N; ++j) mult[j] = as * bs[j] / ys;
  return requantize(acc, out, N, 1, mult, static_cast<double>(yzpT.getInt64(0)), yzpT.dtype);
}

std::vector<ValueInfo> inferConvLike(const NodeContext& ctx, const ValueInfo& x, const ValueInfo& w, DataType outType) {
  if (!x.hasShape || !w.hasShape) return {unknownRank(outType)};
  if (x.shape.size() < 3 || w.shape.size() != x.shape.size()) shapeError(ctx, "X and W ranks do not fit");
  std::vector<int64_t> kernel = ctx.attrs.getInts("kernel_shape", {});
  if (kernel.empty()) kernel.assign(w.shape.begin() + 2, w.shape.end());
  Window win = forwardWindow(ctx, std::vector<int64_t>(x.shape.begin() + 2, x.shape.end()), kernel, false);
  Shape out{x.shape[0], w.shape[0]};
  out.insert(out.end(), win.out.begin(), win.out.end());
  return {makeInfo(outType, out)};
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{
    "ConvInteger",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 4);
      return inferConvLike(ctx, info(ctx, in, 0), info(ctx, in, 1), DataType::kInt32);
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{convInteger(ctx, in)}; }});

PLANFORGE_REGISTER_OP(OpDef{
    "QLinearConv",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 8, 9);
      return inferConvLike(ctx, info(ctx, in, 0), info(ctx, in, 3), info(ctx, in, 7).dtype);
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{qlinearConv(ctx, in)}; }});

PLANFORGE_REGISTER_OP(OpDef{
    "QLinearMatMul",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 8, 8);
      const ValueInfo& a = info(ctx, in, 0);
      const ValueInfo& b = info(ctx, in, 3);
      const DataType dt = info(ctx, in, 7).dtype;
      if (!a.hasShape || !b.hasShape || a.shape.size() < 2 || b.shape.size() != 2) return std::vector<ValueInfo>{unknownRank(dt)};
      Shape out = a.shape;
      out.back() = b.shape[1];
      return std::vector<ValueInfo>{makeInfo(dt, out)};
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{qlinearMatMul(ctx, in)}; }});

}  // namespace ops
}  // namespace planforge
