#include "fused_activation.h"

#include <algorithm>
#include <cmath>

#include "elementwise.h"

namespace planforge {
namespace ops {

FusedEpilogue fusedEpilogue(const NodeContext& ctx) {
  FusedEpilogue e;
  const std::string name = ctx.attrs.getString("activation", "");
  e.alpha = ctx.attrs.getFloat("activation_alpha", 0.f);
  e.beta = ctx.attrs.getFloat("activation_beta", 0.f);
  using K = FusedEpilogue::Kind;
  if (name.empty() || name == "None") e.kind = K::kNone;
  else if (name == "Relu") e.kind = K::kRelu;
  else if (name == "Clip") e.kind = K::kClip;
  else if (name == "Sigmoid") e.kind = K::kSigmoid;
  else if (name == "HardSigmoid") e.kind = K::kHardSigmoid;
  else if (name == "HardSwish") e.kind = K::kHardSwish;
  else if (name == "Gelu") e.kind = K::kGelu;
  else if (name == "GeluTanh") e.kind = K::kGeluTanh;
  else if (name == "SiLU") e.kind = K::kSiLU;
  else if (name == "Tanh") e.kind = K::kTanh;
  else if (name == "LeakyRelu") e.kind = K::kLeakyRelu;
  else
    attrError(ctx, "unknown fused activation '" + name +
                       "' (expected Relu, Clip, Sigmoid, HardSigmoid, HardSwish, Gelu, GeluTanh, SiLU, Tanh or LeakyRelu)");
  if (!ctx.attrs.has("activation_alpha")) {
    if (e.kind == K::kLeakyRelu) e.alpha = 0.01f;
    if (e.kind == K::kHardSigmoid) e.alpha = 0.2f;
    if (e.kind == K::kClip) e.alpha = -INFINITY;
  }
  if (!ctx.attrs.has("activation_beta")) {
    if (e.kind == K::kHardSigmoid) e.beta = 0.5f;
    if (e.kind == K::kClip) e.beta = INFINITY;
  }
  return e;
}

namespace {
template <typename F>
void mapInPlace(float* p, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) p[i] = f(p[i]);
}
}  // namespace

void applyEpilogue(const NodeContext& ctx, const FusedEpilogue& e, Tensor& y, const Tensor* residual) {
  float* p = y.data<float>();
  const int64_t n = y.numel();
  if (residual) {
    // The residual may broadcast into the output (never the other way: the pass checks it).
    if (residual->shape != y.shape && broadcastShapes(ctx, y.shape, residual->shape) != y.shape)
      shapeError(ctx, "residual " + shapeToString(residual->shape) + " does not broadcast to the output " + shapeToString(y.shape));
    requireFloat(ctx, *residual, "residual");
    const Tensor r = toFloat32(*residual);
    if (r.shape == y.shape) {
      const float* rp = r.data<float>();
      for (int64_t i = 0; i < n; ++i) p[i] += rp[i];
    } else {
      broadcastApply<float, float, float>(y, r, y, [](float v, float s) { return v + s; });
    }
  }
  using K = FusedEpilogue::Kind;
  const float a = e.alpha, b = e.beta;
  switch (e.kind) {
    case K::kNone: break;
    case K::kRelu: mapInPlace(p, n, [](float v) { return v < 0.f ? 0.f : v; }); break;
    case K::kClip: mapInPlace(p, n, [a, b](float v) { return std::isnan(v) ? v : std::min(std::max(v, a), b); }); break;
    case K::kSigmoid: mapInPlace(p, n, [](float v) { return 1.f / (1.f + std::exp(-v)); }); break;
    case K::kHardSigmoid: mapInPlace(p, n, [a, b](float v) { return std::max(0.f, std::min(1.f, a * v + b)); }); break;
    case K::kHardSwish: mapInPlace(p, n, [](float v) { return v * std::max(0.f, std::min(1.f, v / 6.f + 0.5f)); }); break;
    case K::kGelu: mapInPlace(p, n, [](float v) { return 0.5f * v * (1.f + std::erf(v * 0.7071067811865476f)); }); break;
    case K::kGeluTanh:
      mapInPlace(p, n, [](float v) {
        const float k = 0.7978845608028654f;  // sqrt(2/pi)
        return 0.5f * v * (1.f + std::tanh(k * (v + 0.044715f * v * v * v)));
      });
      break;
    case K::kSiLU: mapInPlace(p, n, [](float v) { return v / (1.f + std::exp(-v)); }); break;
    case K::kTanh: mapInPlace(p, n, [](float v) { return std::tanh(v); }); break;
    case K::kLeakyRelu: mapInPlace(p, n, [a](float v) { return v < 0.f ? a * v : v; }); break;
  }
}

void checkResidualInfo(const NodeContext& ctx, const ValueInfo& out, const ValueInfo& residual) {
  if (!residual.present || !residual.hasShape || !out.hasShape) return;
  if (residual.shape.size() != out.shape.size())
    shapeError(ctx, "residual " + shapeToString(residual.shape) + " does not match the output " + shapeToString(out.shape));
  for (size_t i = 0; i < out.shape.size(); ++i)
    if (out.shape[i] >= 0 && residual.shape[i] >= 0 && out.shape[i] != residual.shape[i] && residual.shape[i] != 1)
      shapeError(ctx, "residual " + shapeToString(residual.shape) + " does not broadcast to the output " + shapeToString(out.shape));
}

}  // namespace ops
}  // namespace planforge
