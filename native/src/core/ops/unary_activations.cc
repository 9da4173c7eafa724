// Activation functions: Relu, LeakyRelu, PRelu, Elu, Selu, Celu, ThresholdedRelu,
// Sigmoid, HardSigmoid, HardSwish, Tanh, Gelu, Mish, Clip.
#include <cmath>
#include <limits>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

template <typename Make>
OpDef activation(const char* name, Make make) {
  // make(ctx) returns the per-element function with the node's attributes bound.
  return OpDef{name, sameAsInput0, [make](const NodeContext& ctx, const Inputs& in) {
                 return std::vector<Tensor>{mapFloat(ctx, input(ctx, in, 0), make(ctx))};
               }};
}

float sigmoid(float x) {
  if (x >= 0) return 1.f / (1.f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.f + e);
}

template <typename T>
Tensor clipTyped(const Tensor& x, T lo, T hi) {
  Tensor out(x.dtype, x.shape);
  const T* p = x.data<T>();
  T* o = out.data<T>();
  for (int64_t i = 0; i < x.numel(); ++i) o[i] = p[i] < lo ? lo : (p[i] > hi ? hi : p[i]);
  return out;
}

Tensor clip(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0);
  if (ctx.opset < 11) {
    const float lo = ctx.attrs.getFloat("min", -std::numeric_limits<float>::infinity());
    const float hi = ctx.attrs.getFloat("max", std::numeric_limits<float>::infinity());
    return mapFloat(ctx, x, [lo, hi](float v) { return v < lo ? lo : (v > hi ? hi : v); });
  }
  // opset >= 11: optional scalar inputs min / max.
  for (size_t i = 1; i < 3; ++i)
    if (hasInput(in, i) && in[i]->numel() != 1) shapeError(ctx, "min/max must be scalars");
  if (isFloatType(x.dtype)) {
    const float lo = hasInput(in, 1) ? static_cast<float>(in[1]->getDouble(0)) : -std::numeric_limits<float>::infinity();
    const float hi = hasInput(in, 2) ? static_cast<float>(in[2]->getDouble(0)) : std::numeric_limits<float>::infinity();
    return mapFloat(ctx, x, [lo, hi](float v) { return v < lo ? lo : (v > hi ? hi : v); });
  }
  Tensor out;
#define PF_CLIP(T)                                                                                       \
  out = clipTyped<T>(x, hasInput(in, 1) ? static_cast<T>(in[1]->getInt64(0)) : std::numeric_limits<T>::lowest(), \
                     hasInput(in, 2) ? static_cast<T>(in[2]->getInt64(0)) : std::numeric_limits<T>::max())
  PLANFORGE_DISPATCH_NUMERIC(x.dtype, ctx, PF_CLIP)
#undef PF_CLIP
  return out;
}

template <typename T>
Tensor reluTyped(const Tensor& x) {
  Tensor out(x.dtype, x.shape);
  const T* p = x.data<T>();
  T* o = out.data<T>();
  for (int64_t i = 0; i < x.numel(); ++i) o[i] = p[i] > T(0) ? p[i] : T(0);
  return out;
}

// PRelu: slope broadcasts unidirectionally to X. Before opset 7 a 1-D slope of size C
// is per channel (axis 1), as PyTorch exported it.
Tensor prelu(const NodeContext& ctx, const Tensor& xIn, const Tensor& slopeIn) {
  Tensor x = toFloat32(xIn);
  Tensor slope = toFloat32(slopeIn);
  if (ctx.opset < 7 && slope.shape.size() == 1 && x.shape.size() >= 2 && slope.shape[0] == x.shape[1] &&
      slope.shape[0] != 1) {
    Shape s(x.shape.size() - 1, 1);
    s[0] = slope.shape[0];
    slope.shape = s;
  }
  Shape outShape = broadcastShapes(ctx, x.shape, slope.shape);
  if (outShape != x.shape) shapeError(ctx, "slope " + shapeToString(slope.shape) + " does not broadcast to X " + shapeToString(x.shape));
  Tensor out(DataType::kFloat, x.shape);
  broadcastApply<float, float, float>(x, slope, out, [](float v, float s) { return v < 0 ? v * s : v; });
  return castFromFloat32(out, xIn.dtype);
}

Tensor relu(const NodeContext& ctx, const Tensor& x) {
  if (isFloatType(x.dtype) && x.dtype != DataType::kDouble) return mapFloat(ctx, x, [](float v) { return v > 0 ? v : 0.f; });
  Tensor out;
#define PF_RELU(T) out = reluTyped<T>(x)
  PLANFORGE_DISPATCH_NUMERIC(x.dtype, ctx, PF_RELU)
#undef PF_RELU
  return out;
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"Relu", sameAsInput0, [](const NodeContext& ctx, const Inputs& in) {
                        return std::vector<Tensor>{relu(ctx, input(ctx, in, 0))};
                      }});
PLANFORGE_REGISTER_OP(activation("LeakyRelu", [](const NodeContext& ctx) {
  const float a = ctx.attrs.getFloat("alpha", 0.01f);
  return [a](float v) { return v < 0 ? a * v : v; };
}));
PLANFORGE_REGISTER_OP(activation("Elu", [](const NodeContext& ctx) {
  const float a = ctx.attrs.getFloat("alpha", 1.f);
  return [a](float v) { return v < 0 ? a * std::expm1(v) : v; };
}));
PLANFORGE_REGISTER_OP(activation("Celu", [](const NodeContext& ctx) {
  const float a = ctx.attrs.getFloat("alpha", 1.f);
  return [a](float v) { return std::max(0.f, v) + std::min(0.f, a * std::expm1(v / a)); };
}));
PLANFORGE_REGISTER_OP(activation("Selu", [](const NodeContext& ctx) {
  const float a = ctx.attrs.getFloat("alpha", 1.67326319217681884765625f);
  const float g = ctx.attrs.getFloat("gamma", 1.05070102214813232421875f);
  return [a, g](float v) { return v > 0 ? g * v : g * a * std::expm1(v); };
}));
PLANFORGE_REGISTER_OP(activation("ThresholdedRelu", [](const NodeContext& ctx) {
  const float a = ctx.attrs.getFloat("alpha", 1.f);
  return [a](float v) { return v > a ? v : 0.f; };
}));
PLANFORGE_REGISTER_OP(activation("Sigmoid", [](const NodeContext&) { return [](float v) { return sigmoid(v); }; }));
PLANFORGE_REGISTER_OP(activation("Tanh", [](const NodeContext&) { return [](float v) { return std::tanh(v); }; }));
PLANFORGE_REGISTER_OP(activation("HardSigmoid", [](const NodeContext& ctx) {
  const float a = ctx.attrs.getFloat("alpha", 0.2f);
  const float b = ctx.attrs.getFloat("beta", 0.5f);
  return [a, b](float v) { return std::max(0.f, std::min(1.f, a * v + b)); };
}));
PLANFORGE_REGISTER_OP(activation("HardSwish", [](const NodeContext&) {
  return [](float v) { return v * std::max(0.f, std::min(1.f, v / 6.f + 0.5f)); };
}));
PLANFORGE_REGISTER_OP(activation("Mish", [](const NodeContext&) {
  return [](float v) { return v * std::tanh(v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v))); };
}));
PLANFORGE_REGISTER_OP(activation("Gelu", [](const NodeContext& ctx) {
  const std::string approx = ctx.attrs.getString("approximate", "none");
  if (approx != "none" && approx != "tanh") attrError(ctx, "approximate must be 'none' or 'tanh', got '" + approx + "'");
  const bool useTanh = approx == "tanh";
  return [useTanh](float v) {
    if (useTanh) {
      const float k = 0.7978845608028654f;  // sqrt(2/pi)
      return 0.5f * v * (1.f + std::tanh(k * (v + 0.044715f * v * v * v)));
    }
    return 0.5f * v * (1.f + std::erf(v * 0.7071067811865476f));
  };
}));

PLANFORGE_REGISTER_OP(OpDef{
    "Clip", sameAsInput0,
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{clip(ctx, in)}; }});

PLANFORGE_REGISTER_OP(OpDef{
    "PRelu",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return sameAsInput0(ctx, in);
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<Tensor>{prelu(ctx, input(ctx, in, 0), input(ctx, in, 1))};
    }});

}  // namespace ops
}  // namespace planforge
