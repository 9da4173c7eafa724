// Softmax, LogSoftmax, Hardmax. Before opset 13 the input is coerced to 2-D at `axis`
// (default 1) and normalized over all trailing dims; from opset 13 over the single `axis` (default -1).
#include <cmath>
#include <limits>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

enum class Kind { kSoftmax, kLogSoftmax, kHardmax };

Tensor softmax(const NodeContext& ctx, const Tensor& xIn, Kind kind) {
  requireFloat(ctx, xIn, "input");
  const Tensor x = toFloat32(xIn);
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const bool legacy = ctx.opset < 13;
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", legacy ? 1 : -1), rank);
  // View as [outer, n, inner]: reduce over n with stride inner.
  int64_t outer = 1, n = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape[i];
  if (legacy) {
    for (int64_t i = axis; i < rank; ++i) n *= x.shape[i];
  } else {
    n = rank ? x.shape[axis] : 1;
    for (int64_t i = axis + 1; i < rank; ++i) inner *= x.shape[i];
  }
  Tensor y(DataType::kFloat, x.shape);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      const float* src = xp + o * n * inner + in;
      float* dst = yp + o * n * inner + in;
      float mx = -std::numeric_limits<float>::infinity();
      int64_t arg = 0;
      for (int64_t i = 0; i < n; ++i)
        if (src[i * inner] > mx) {
          mx = src[i * inner];
          arg = i;
        }
      if (kind == Kind::kHardmax) {
        for (int64_t i = 0; i < n; ++i) dst[i * inner] = i == arg ? 1.f : 0.f;
        continue;
      }
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float e = std::exp(src[i * inner] - mx);
        sum += e;
        if (kind == Kind::kSoftmax) dst[i * inner] = e;
      }
      if (kind == Kind::kSoftmax) {
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t i = 0; i < n; ++i) dst[i * inner] *= inv;
      } else {
        const float lse = static_cast<float>(std::log(sum));
        for (int64_t i = 0; i < n; ++i) dst[i * inner] = src[i * inner] - mx - lse;
      }
    }
  return castFromFloat32(y, xIn.dtype);
}

OpDef softmaxOp(const char* name, Kind kind) {
  return OpDef{name, sameAsInput0, [kind](const NodeContext& ctx, const Inputs& in) {
                 return std::vector<Tensor>{softmax(ctx, input(ctx, in, 0), kind)};
               }};
}

}  // namespace

PLANFORGE_REGISTER_OP(softmaxOp("Softmax", Kind::kSoftmax));
PLANFORGE_REGISTER_OP(softmaxOp("LogSoftmax", Kind::kLogSoftmax));
PLANFORGE_REGISTER_OP(softmaxOp("Hardmax", Kind::kHardmax));

}  // namespace ops
}  // namespace planforge
