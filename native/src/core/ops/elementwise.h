// Templates for element-wise kernels: numpy-broadcast binary loops and float unary maps.
#pragma once
#include <cstring>
#include <vector>

#include "op_util.h"

namespace planforge {
namespace ops {

// out = f(a, b) with numpy broadcasting; out must already have the broadcast shape.
template <typename TA, typename TB, typename TO, typename F>
void broadcastApply(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TO* po = out.data<TO>();
  const int64_t n = out.numel();
  if (a.shape == out.shape && b.shape == out.shape) {
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
    return;
  }
  if (a.shape == out.shape && b.numel() == 1) {
    const TB y = pb[0];
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], y);
    return;
  }
  if (b.shape == out.shape && a.numel() == 1) {
    const TA x = pa[0];
    for (int64_t i = 0; i < n; ++i) po[i] = f(x, pb[i]);
    return;
  }
  std::vector<Shape> strides{broadcastStrides(a.shape, out.shape), broadcastStrides(b.shape, out.shape)};
  forEachBroadcast(out.shape, strides,
                   [&](int64_t o, int64_t len, const std::vector<int64_t>& off, const std::vector<int64_t>& inner) {
                     const TA* x = pa + off[0];
                     const TB* y = pb + off[1];
                     TO* r = po + o;
                     if (inner[0] == 1 && inner[1] == 1) {
                       for (int64_t i = 0; i < len; ++i) r[i] = f(x[i], y[i]);
                     } else if (inner[0] == 1 && inner[1] == 0) {
                       const TB yv = *y;
                       for (int64_t i = 0; i < len; ++i) r[i] = f(x[i], yv);
                     } else if (inner[0] == 0 && inner[1] == 1) {
                       const TA xv = *x;
                       for (int64_t i = 0; i < len; ++i) r[i] = f(xv, y[i]);
                     } else {
                       for (int64_t i = 0; i < len; ++i) r[i] = f(x[i * inner[0]], y[i * inner[1]]);
                     }
                   });
}

// float16/bfloat16/double <-> float32 copies (float32 passes through).
Tensor toFloat32(const Tensor& t);
Tensor castFromFloat32(const Tensor& t, DataType dtype);

// Applies f to every element of a float tensor (any float dtype; math in float32).
template <typename F>
Tensor mapFloat(const NodeContext& ctx, const Tensor& x, F f) {
  requireFloat(ctx, x, "input");
  if (x.dtype == DataType::kFloat) {
    Tensor out(DataType::kFloat, x.shape);
    const float* p = x.data<float>();
    float* o = out.data<float>();
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i) o[i] = f(p[i]);
    return out;
  }
  if (x.dtype == DataType::kDouble) {
    Tensor out(DataType::kDouble, x.shape);
    const double* p = x.data<double>();
    double* o = out.data<double>();
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<double>(f(p[i]));
    return out;
  }
  std::vector<float> v = toFloats(x);
  for (auto& e : v) e = f(e);
  return fromFloats(x.dtype, x.shape, v.data());
}

}  // namespace ops
}  // namespace planforge
