// BatchNormalization (inference and training mode), InstanceNormalization,
// LayerNormalization, GroupNormalization and LRN.
#include <cmath>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

int64_t spatialSize(const Shape& s) {
  int64_t n = 1;
  for (size_t i = 2; i < s.size(); ++i) n *= s[i];
  return n;
}

std::vector<ValueInfo> inferBatchNorm(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 5, 5);
  std::vector<ValueInfo> r = sameAsInput0(ctx, in);
  for (int i = 1; i < ctx.numOutputs; ++i) {
    // running mean / var (and, opset < 14, saved mean / var): [C]
    const ValueInfo& mean = info(ctx, in, 3);
    r.push_back(mean.hasShape ? makeInfo(mean.dtype, mean.shape) : unknownRank(mean.dtype));
  }
  return r;
}

std::vector<Tensor> batchNorm(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 5, 5);
  const Tensor& xIn = input(ctx, in, 0);
  requireFloat(ctx, xIn, "X");
  const Tensor x = toFloat32(xIn);
  if (x.shape.size() < 2) shapeError(ctx, "X must be at least 2-D");
  const int64_t N = x.shape[0], C = x.shape[1], S = spatialSize(x.shape);
  std::vector<float> scale = toFloats(input(ctx, in, 1)), bias = toFloats(input(ctx, in, 2));
  std::vector<float> mean = toFloats(input(ctx, in, 3)), var = toFloats(input(ctx, in, 4));
  const float eps = ctx.attrs.getFloat("epsilon", 1e-5f);
  const float momentum = ctx.attrs.getFloat("momentum", 0.9f);
  // Per-activation statistics (opset < 9, spatial = 0): parameters of shape [C, spatial...].
  const bool perActivation = ctx.opset < 9 && ctx.attrs.getInt("spatial", 1) == 0;
  const int64_t P = perActivation ? C * S : C;
  if ((int64_t)scale.size() != P || (int64_t)bias.size() != P || (int64_t)mean.size() != P || (int64_t)var.size() != P)
    shapeError(ctx, "scale/B/mean/var must have " + std::to_string(P) + " values");
  bool training = ctx.opset >= 14 ? ctx.attrs.getInt("training_mode", 0) != 0
                                  : (ctx.opset < 7 ? ctx.attrs.getInt("is_test", 0) == 0 && ctx.numOutputs > 1
                                                   : ctx.numOutputs > 1);
  std::vector<float> useMean = mean, useVar = var;
  std::vector<float> batchMean(P, 0.f), batchVar(P, 0.f);
  if (training) {
    const float* xp = x.data<float>();
    const int64_t per = perActivation ? 1 : S;
    const double cnt = static_cast<double>(N) * per;
    for (int64_t p = 0; p < P; ++p) {
      double s = 0, s2 = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float* src = perActivation ? xp + n * C * S + p : xp + (n * C + p) * S;
        for (int64_t i = 0; i < per; ++i) {
          s += src[i];
          s2 += static_cast<double>(src[i]) * src[i];
        }
      }
      batchMean[p] = static_cast<float>(s / cnt);
      batchVar[p] = static_cast<float>(s2 / cnt - (s / cnt) * (s / cnt));
    }
    useMean = batchMean;
    useVar = batchVar;
  }
  Tensor y(DataType::kFloat, x.shape);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t base = (n * C + c) * S;
      for (int64_t i = 0; i < S; ++i) {
        const int64_t p = perActivation ? c * S + i : c;
        const float a = scale[p] / std::sqrt(useVar[p] + eps);
        yp[base + i] = (xp[base + i] - useMean[p]) * a + bias[p];
      }
    }
  std::vector<Tensor> out{castFromFloat32(y, xIn.dtype)};
  if (ctx.numOutputs > 1) {
    const Tensor& meanT = input(ctx, in, 3);
    std::vector<float> runMean(P), runVar(P);
    for (int64_t p = 0; p < P; ++p) {
      runMean[p] = training ? mean[p] * momentum + batchMean[p] * (1 - momentum) : mean[p];
      runVar[p] = training ? var[p] * momentum + batchVar[p] * (1 - momentum) : var[p];
    }
    out.push_back(fromFloats(meanT.dtype, meanT.shape, runMean.data()));
    if (ctx.numOutputs > 2) out.push_back(fromFloats(meanT.dtype, meanT.shape, runVar.data()));
    // opset < 14: saved mean and saved inverse std (training only; zeros are not meaningful otherwise).
    if (ctx.numOutputs > 3) out.push_back(fromFloats(meanT.dtype, meanT.shape, batchMean.data()));
    if (ctx.numOutputs > 4) {
      std::vector<float> inv(P);
      for (int64_t p = 0; p < P; ++p) inv[p] = 1.f / std::sqrt(batchVar[p] + eps);
      out.push_back(fromFloats(meanT.dtype, meanT.shape, inv.data()));
    }
  }
  return out;
}

Tensor instanceNorm(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 3, 3);
  const Tensor& xIn = input(ctx, in, 0);
  requireFloat(ctx, xIn, "X");
  const Tensor x = toFloat32(xIn);
  if (x.shape.size() < 3) shapeError(ctx, "X must be at least 3-D");
  const int64_t N = x.shape[0], C = x.shape[1], S = spatialSize(x.shape);
  std::vector<float> scale = toFloats(input(ctx, in, 1)), bias = toFloats(input(ctx, in, 2));
  if ((int64_t)scale.size() != C || (int64_t)bias.size() != C) shapeError(ctx, "scale/B must have C values");
  const float eps = ctx.attrs.getFloat("epsilon", 1e-5f);
  Tensor y(DataType::kFloat, x.shape);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const float* src = x.data<float>() + (n * C + c) * S;
      float* dst = y.data<float>() + (n * C + c) * S;
      double s = 0;
      for (int64_t i = 0; i < S; ++i) s += src[i];
      const double mean = s / S;
      double v = 0;
      for (int64_t i = 0; i < S; ++i) v += (src[i] - mean) * (src[i] - mean);
      const double inv = 1.0 / std::sqrt(v / S + eps);
      for (int64_t i = 0; i < S; ++i) dst[i] = static_cast<float>((src[i] - mean) * inv * scale[c] + bias[c]);
    }
  return castFromFloat32(y, xIn.dtype);
}

// Broadcasts a parameter (Scale / B of LayerNormalization) to `inner` elements of the trailing shape.
std::vector<float> expandTrailing(const NodeContext& ctx, const Tensor& p, const Shape& trailing) {
  Tensor pf = toFloat32(p);
  Shape out = broadcastShapes(ctx, trailing, pf.shape);
  if (out != trailing) shapeError(ctx, "parameter " + shapeToString(p.shape) + " does not broadcast to " + shapeToString(trailing));
  Tensor ones(DataType::kFloat, trailing);
  Tensor r(DataType::kFloat, trailing);
  broadcastApply<float, float, float>(ones, pf, r, [](float, float v) { return v; });
  return std::vector<float>(r.data<float>(), r.data<float>() + r.numel());
}

std::vector<ValueInfo> inferLayerNorm(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  std::vector<ValueInfo> r = sameAsInput0(ctx, in);
  if (ctx.numOutputs > 1) {
    ValueInfo stat = unknownRank(DataType::kFloat);
    if (x.hasShape) {
      const int64_t rank = static_cast<int64_t>(x.shape.size());
      const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", -1), rank);
      Shape s = x.shape;
      for (int64_t i = axis; i < rank; ++i) s[i] = 1;
      stat = makeInfo(DataType::kFloat, s);
    }
    for (int i = 1; i < ctx.numOutputs; ++i) r.push_back(stat);
  }
  return r;
}

std::vector<Tensor> layerNorm(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 2, 3);
  const Tensor& xIn = input(ctx, in, 0);
  requireFloat(ctx, xIn, "X");
  const Tensor x = toFloat32(xIn);
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", -1), rank);
  const float eps = ctx.attrs.getFloat("epsilon", 1e-5f);
  Shape trailing(x.shape.begin() + axis, x.shape.end());
  const int64_t inner = shapeNumel(trailing);
  const int64_t outer = inner == 0 ? 0 : x.numel() / inner;
  std::vector<float> scale = expandTrailing(ctx, input(ctx, in, 1), trailing);
  std::vector<float> bias = hasInput(in, 2) ? expandTrailing(ctx, *in[2], trailing) : std::vector<float>(inner, 0.f);
  Tensor y(DataType::kFloat, x.shape);
  Shape statShape = x.shape;
  for (int64_t i = axis; i < rank; ++i) statShape[i] = 1;
  Tensor meanT(DataType::kFloat, statShape), invT(DataType::kFloat, statShape);
  for (int64_t o = 0; o < outer; ++o) {
    const float* src = x.data<float>() + o * inner;
    float* dst = y.data<float>() + o * inner;
    double s = 0;
    for (int64_t i = 0; i < inner; ++i) s += src[i];
    const double mean = s / inner;
    double v = 0;
    for (int64_t i = 0; i < inner; ++i) v += (src[i] - mean) * (src[i] - mean);
    const double inv = 1.0 / std::sqrt(v / inner + eps);
    for (int64_t i = 0; i < inner; ++i) dst[i] = static_cast<float>((src[i] - mean) * inv) * scale[i] + bias[i];
    meanT.data<float>()[o] = static_cast<float>(mean);
    invT.data<float>()[o] = static_cast<float>(inv);
  }
  std::vector<Tensor> r{castFromFloat32(y, xIn.dtype)};
  if (ctx.numOutputs > 1) r.push_back(meanT);
  if (ctx.numOutputs > 2) r.push_back(invT);
  return r;
}

Tensor groupNorm(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 3, 3);
  const Tensor& xIn = input(ctx, in, 0);
  requireFloat(ctx, xIn, "X");
  const Tensor x = toFloat32(xIn);
  if (x.shape.size() < 3) shapeError(ctx, "X must be at least 3-D");
  const int64_t G = ctx.attrs.getInt("num_groups", 0);
  const int64_t N = x.shape[0], C = x.shape[1], S = spatialSize(x.shape);
  if (G <= 0 || C % G != 0) attrError(ctx, "num_groups must divide the channels");
  const float eps = ctx.attrs.getFloat("epsilon", 1e-5f);
  std::vector<float> scale = toFloats(input(ctx, in, 1)), bias = toFloats(input(ctx, in, 2));
  // opset 18 had per-group scale/bias, opset 21 per-channel.
  const bool perGroup = static_cast<int64_t>(scale.size()) == G && G != C;
  if (!perGroup && static_cast<int64_t>(scale.size()) != C) shapeError(ctx, "scale must have C or num_groups values");
  const int64_t Cg = C / G;
  Tensor y(DataType::kFloat, x.shape);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      const int64_t base = (n * C + g * Cg) * S, cnt = Cg * S;
      const float* src = x.data<float>() + base;
      double s = 0;
      for (int64_t i = 0; i < cnt; ++i) s += src[i];
      const double mean = s / cnt;
      double v = 0;
      for (int64_t i = 0; i < cnt; ++i) v += (src[i] - mean) * (src[i] - mean);
      const double inv = 1.0 / std::sqrt(v / cnt + eps);
      for (int64_t i = 0; i < cnt; ++i) {
        const int64_t c = g * Cg + i / S;
        const int64_t p = perGroup ? g : c;
        y.data<float>()[base + i] = static_cast<float>((src[i] - mean) * inv) * scale[p] + bias[p];
      }
    }
  return castFromFloat32(y, xIn.dtype);
}

Tensor lrn(const NodeContext& ctx, const Tensor& xIn) {
  requireFloat(ctx, xIn, "X");
  const Tensor x = toFloat32(xIn);
  if (x.shape.size() < 2) shapeError(ctx, "X must be at least 2-D");
  const int64_t size = ctx.attrs.getInt("size", 0);
  if (size <= 0) attrError(ctx, "size must be positive");
  const float alpha = ctx.attrs.getFloat("alpha", 1e-4f), beta = ctx.attrs.getFloat("beta", 0.75f);
  const float bias = ctx.attrs.getFloat("bias", 1.f);
  const int64_t N = x.shape[0], C = x.shape[1], S = spatialSize(x.shape);
  const int64_t before = (size - 1) / 2, after = size - 1 - before;
  Tensor y(DataType::kFloat, x.shape);
  const float* xp = x.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < S; ++i) {
        double sq = 0;
        for (int64_t j = std::max<int64_t>(0, c - before); j <= std::min<int64_t>(C - 1, c + after); ++j) {
          const float v = xp[(n * C + j) * S + i];
          sq += static_cast<double>(v) * v;
        }
        const int64_t idx = (n * C + c) * S + i;
        y.data<float>()[idx] = static_cast<float>(xp[idx] / std::pow(bias + alpha / size * sq, beta));
      }
  return castFromFloat32(y, xIn.dtype);
}

Tensor lpNormalization(const NodeContext& ctx, const Tensor& xIn) {
  requireFloat(ctx, xIn, "input");
  const Tensor x = toFloat32(xIn);
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", -1), rank);
  const int64_t p = ctx.attrs.getInt("p", 2);
  if (p != 1 && p != 2) attrError(ctx, "p must be 1 or 2");
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[d];
  const int64_t n = rank ? x.shape[axis] : 1;
  Tensor y(DataType::kFloat, x.shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      double norm = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double v = x.data<float>()[(o * n + i) * inner + in];
        norm += p == 1 ? std::fabs(v) : v * v;
      }
      if (p == 2) norm = std::sqrt(norm);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t at = (o * n + i) * inner + in;
        y.data<float>()[at] = norm == 0 ? 0.f : static_cast<float>(x.data<float>()[at] / norm);
      }
    }
  return castFromFloat32(y, xIn.dtype);
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"LpNormalization", sameAsInput0, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{lpNormalization(ctx, input(ctx, in, 0))};
                            }});
PLANFORGE_REGISTER_OP(OpDef{"BatchNormalization", inferBatchNorm, batchNorm});
PLANFORGE_REGISTER_OP(OpDef{"InstanceNormalization", sameAsInput0, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{instanceNorm(ctx, in)};
                            }});
PLANFORGE_REGISTER_OP(OpDef{"LayerNormalization", inferLayerNorm, layerNorm});
PLANFORGE_REGISTER_OP(OpDef{"GroupNormalization", sameAsInput0, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{groupNorm(ctx, in)};
                            }});
PLANFORGE_REGISTER_OP(OpDef{"LRN", sameAsInput0, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{lrn(ctx, input(ctx, in, 0))};
                            }});

}  // namespace ops
}  // namespace planforge
