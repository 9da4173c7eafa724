// MaxPool / AveragePool (1-D/2-D/3-D, pads, auto_pad, ceil_mode, dilations,
// count_include_pad, MaxPool Indices) and GlobalAveragePool / GlobalMaxPool / GlobalLpPool, LpPool.
#include <cmath>
#include <limits>

#include "elementwise.h"
#include "op_util.h"
#include "window.h"

namespace planforge {
namespace ops {

namespace {

enum class PoolKind { kMax, kAverage, kLp };

Window poolWindow(const NodeContext& ctx, const Shape& x) {
  if (x.size() < 3) shapeError(ctx, "input must be at least 3-D [N, C, spatial...], got " + shapeToString(x));
  std::vector<int64_t> kernel = ctx.attrs.getInts("kernel_shape", {});
  if (kernel.empty()) attrError(ctx, "kernel_shape is required");
  std::vector<int64_t> spatial(x.begin() + 2, x.end());
  const bool ceilMode = ctx.attrs.getInt("ceil_mode", 0) != 0;
  return forwardWindow(ctx, spatial, kernel, ceilMode);
}

std::vector<ValueInfo> inferPool(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  if (!x.hasShape) return {unknownRank(x.dtype), unknownRank(DataType::kInt64)};
  Window w = poolWindow(ctx, x.shape);
  Shape out{x.shape[0], x.shape[1]};
  out.insert(out.end(), w.out.begin(), w.out.end());
  std::vector<ValueInfo> r{makeInfo(x.dtype, out)};
  if (ctx.opType == "MaxPool" && ctx.numOutputs > 1) r.push_back(makeInfo(DataType::kInt64, out));
  return r;
}

std::vector<Tensor> pool(const NodeContext& ctx, const Tensor& xIn, PoolKind kind) {
  Tensor x = toFloat32(xIn);
  Window win = poolWindow(ctx, x.shape);
  Window3 w = toWindow3(ctx, win);
  const bool countPad = ctx.attrs.getInt("count_include_pad", 0) != 0;
  const float p = static_cast<float>(ctx.attrs.getInt("p", 2));
  const int64_t storageOrder = ctx.attrs.getInt("storage_order", 0);
  const int64_t N = x.shape[0], C = x.shape[1];
  Shape outShape{N, C};
  outShape.insert(outShape.end(), win.out.begin(), win.out.end());
  Tensor y(DataType::kFloat, outShape);
  const bool wantIndices = kind == PoolKind::kMax && ctx.numOutputs > 1;
  Tensor indices(DataType::kInt64, wantIndices ? outShape : Shape{0});
  const int64_t IS = w.inSize(), OS = w.outSize();
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const float* xc = xp + nc * IS;
    float* yc = yp + nc * OS;
    for (int64_t od = 0; od < w.out[0]; ++od)
      for (int64_t oh = 0; oh < w.out[1]; ++oh)
        for (int64_t ow = 0; ow < w.out[2]; ++ow) {
          const int64_t o[3] = {od, oh, ow};
          float acc = kind == PoolKind::kMax ? -std::numeric_limits<float>::infinity() : 0.f;
          int64_t best = -1;
          int64_t count = 1;  // positions in the divisor (count_include_pad: window clipped to padded input)
          int64_t valid = 0;
          int64_t cnt[3];
          for (int a = 0; a < 3; ++a) {
            const int64_t start = o[a] * w.s[a] - w.pb[a];
            int64_t c = 0;
            for (int64_t k = 0; k < w.k[a]; ++k) {
              const int64_t pos = start + k * w.d[a];
              if (pos >= -w.pb[a] && pos < w.in[a] + w.pe[a]) ++c;
            }
            cnt[a] = c;
          }
          count = cnt[0] * cnt[1] * cnt[2];
          for (int64_t kd = 0; kd < w.k[0]; ++kd) {
            const int64_t id = od * w.s[0] - w.pb[0] + kd * w.d[0];
            if (id < 0 || id >= w.in[0]) continue;
            for (int64_t kh = 0; kh < w.k[1]; ++kh) {
              const int64_t ih = oh * w.s[1] - w.pb[1] + kh * w.d[1];
              if (ih < 0 || ih >= w.in[1]) continue;
              for (int64_t kw = 0; kw < w.k[2]; ++kw) {
                const int64_t iw = ow * w.s[2] - w.pb[2] + kw * w.d[2];
                if (iw < 0 || iw >= w.in[2]) continue;
                const int64_t idx = (id * w.in[1] + ih) * w.in[2] + iw;
                const float v = xc[idx];
                ++valid;
                if (kind == PoolKind::kMax) {
                  if (v > acc || best < 0) {
                    acc = v;
                    best = idx;
                  }
                } else if (kind == PoolKind::kAverage) {
                  acc += v;
                } else {
                  acc += std::pow(std::fabs(v), p);
                }
              }
            }
          }
          const int64_t oi = (od * w.out[1] + oh) * w.out[2] + ow;
          if (kind == PoolKind::kAverage) acc = valid == 0 ? 0.f : acc / static_cast<float>(countPad ? count : valid);
          if (kind == PoolKind::kLp) acc = std::pow(acc, 1.f / p);
          yc[oi] = acc;
          if (wantIndices) {
            int64_t flat = best;
            if (storageOrder == 1 && best >= 0) {  // column-major index within the spatial block
              const int64_t bw = best % w.in[2], bh = (best / w.in[2]) % w.in[1], bd = best / (w.in[2] * w.in[1]);
              flat = (bw * w.in[1] + bh) * w.in[0] + bd;
            }
            indices.data<int64_t>()[nc * OS + oi] = nc * IS + flat;
          }
        }
  }
  std::vector<Tensor> r{castFromFloat32(y, xIn.dtype)};
  if (wantIndices) r.push_back(std::move(indices));
  return r;
}

std::vector<ValueInfo> inferGlobal(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  if (!x.hasShape) return {unknownRank(x.dtype)};
  if (x.shape.size() < 3) shapeError(ctx, "input must be at least 3-D");
  Shape out = x.shape;
  for (size_t i = 2; i < out.size(); ++i) out[i] = 1;
  return {makeInfo(x.dtype, out)};
}

Tensor globalPool(const NodeContext& ctx, const Tensor& xIn, PoolKind kind) {
  if (xIn.shape.size() < 3) shapeError(ctx, "input must be at least 3-D");
  Tensor x = toFloat32(xIn);
  Shape outShape = x.shape;
  int64_t S = 1;
  for (size_t i = 2; i < outShape.size(); ++i) {
    S *= outShape[i];
    outShape[i] = 1;
  }
  const float p = static_cast<float>(ctx.attrs.getInt("p", 2));
  Tensor y(DataType::kFloat, outShape);
  const int64_t NC = x.shape[0] * x.shape[1];
  for (int64_t i = 0; i < NC; ++i) {
    const float* src = x.data<float>() + i * S;
    float acc = kind == PoolKind::kMax ? -std::numeric_limits<float>::infinity() : 0.f;
    for (int64_t j = 0; j < S; ++j) {
      if (kind == PoolKind::kMax) acc = std::max(acc, src[j]);
      else if (kind == PoolKind::kAverage) acc += src[j];
      else acc += std::pow(std::fabs(src[j]), p);
    }
    if (kind == PoolKind::kAverage) acc /= static_cast<float>(S);
    if (kind == PoolKind::kLp) acc = std::pow(acc, 1.f / p);
    y.data<float>()[i] = acc;
  }
  return castFromFloat32(y, xIn.dtype);
}

OpDef poolOp(const char* name, PoolKind kind) {
  return OpDef{name, inferPool,
               [kind](const NodeContext& ctx, const Inputs& in) { return pool(ctx, input(ctx, in, 0), kind); }};
}

OpDef globalOp(const char* name, PoolKind kind) {
  return OpDef{name, inferGlobal, [kind](const NodeContext& ctx, const Inputs& in) {
                 return std::vector<Tensor>{globalPool(ctx, input(ctx, in, 0), kind)};
               }};
}

}  // namespace

PLANFORGE_REGISTER_OP(poolOp("MaxPool", PoolKind::kMax));
PLANFORGE_REGISTER_OP(poolOp("AveragePool", PoolKind::kAverage));
PLANFORGE_REGISTER_OP(poolOp("LpPool", PoolKind::kLp));
PLANFORGE_REGISTER_OP(globalOp("GlobalMaxPool", PoolKind::kMax));
PLANFORGE_REGISTER_OP(globalOp("GlobalAveragePool", PoolKind::kAverage));
PLANFORGE_REGISTER_OP(globalOp("GlobalLpPool", PoolKind::kLp));

}  // namespace ops
}  // namespace planforge
