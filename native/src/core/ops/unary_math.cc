// Element-wise math ops of one input: Sqrt, Exp, Log, Neg, Abs, Reciprocal, Floor, Ceil,
// Round, Sign, Erf, trigonometry, Softplus, Softsign, Not, IsNaN, IsInf.
#include <cmath>
#include <type_traits>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

template <typename F>
OpDef floatUnary(const char* name, F f) {
  return OpDef{name, sameAsInput0, [f](const NodeContext& ctx, const Inputs& in) {
                 return std::vector<Tensor>{mapFloat(ctx, input(ctx, in, 0), f)};
               }};
}

// Unary op defined on every numeric type (Neg, Abs, Sign): float16 through float32.
template <typename F>
OpDef numericUnary(const char* name, F f) {
  return OpDef{name, sameAsInput0, [f](const NodeContext& ctx, const Inputs& in) {
                 const Tensor& x = input(ctx, in, 0);
                 if (x.dtype == DataType::kFloat16 || x.dtype == DataType::kBFloat16)
                   return std::vector<Tensor>{mapFloat(ctx, x, [f](float v) { return f(v); })};
                 Tensor out(x.dtype, x.shape);
                 const int64_t n = x.numel();
#define PF_UNARY(T)                                                      \
  {                                                                      \
    const T* p = x.data<T>();                                            \
    T* o = out.data<T>();                                                \
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(f(p[i]));     \
  }
                 PLANFORGE_DISPATCH_NUMERIC(x.dtype, ctx, PF_UNARY)
#undef PF_UNARY
                 return std::vector<Tensor>{std::move(out)};
               }};
}

std::vector<ValueInfo> boolLikeInput0(const NodeContext& ctx, const Infos& in) {
  ValueInfo v = sameAsInput0(ctx, in)[0];
  v.dtype = DataType::kBool;
  return {v};
}

template <typename F>
OpDef floatPredicate(const char* name, F f) {
  return OpDef{name, boolLikeInput0, [f](const NodeContext& ctx, const Inputs& in) {
                 const Tensor& x = input(ctx, in, 0);
                 requireFloat(ctx, x, "input");
                 std::vector<float> v = toFloats(x);
                 Tensor out(DataType::kBool, x.shape);
                 for (size_t i = 0; i < v.size(); ++i) out.data<uint8_t>()[i] = f(ctx, v[i]) ? 1 : 0;
                 return std::vector<Tensor>{std::move(out)};
               }};
}

}  // namespace

PLANFORGE_REGISTER_OP(floatUnary("Sqrt", [](auto x) { return std::sqrt(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Exp", [](auto x) { return std::exp(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Log", [](auto x) { return std::log(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Reciprocal", [](auto x) { return decltype(x)(1) / x; }));
PLANFORGE_REGISTER_OP(floatUnary("Floor", [](auto x) { return std::floor(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Ceil", [](auto x) { return std::ceil(x); }));
// Round: ties to even, which nearbyint gives in the default FE_TONEAREST mode.
PLANFORGE_REGISTER_OP(floatUnary("Round", [](auto x) { return std::nearbyint(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Erf", [](auto x) { return std::erf(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Sin", [](auto x) { return std::sin(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Cos", [](auto x) { return std::cos(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Tan", [](auto x) { return std::tan(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Asin", [](auto x) { return std::asin(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Acos", [](auto x) { return std::acos(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Atan", [](auto x) { return std::atan(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Sinh", [](auto x) { return std::sinh(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Cosh", [](auto x) { return std::cosh(x); }));
PLANFORGE_REGISTER_OP(floatUnary("Softplus", [](auto x) {
  // log(1 + e^x) without overflow for large x.
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}));
PLANFORGE_REGISTER_OP(floatUnary("Softsign", [](auto x) { return x / (decltype(x)(1) + std::abs(x)); }));
PLANFORGE_REGISTER_OP(numericUnary("Neg", [](auto x) { return -x; }));
PLANFORGE_REGISTER_OP(numericUnary("Abs", [](auto x) {
  if constexpr (std::is_unsigned<decltype(x)>::value) return x;
  else return x < 0 ? -x : x;
}));
PLANFORGE_REGISTER_OP(numericUnary("Sign", [](auto x) {
  using T = decltype(x);
  return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}));
PLANFORGE_REGISTER_OP(floatPredicate("IsNaN", [](const NodeContext&, float x) { return std::isnan(x); }));
PLANFORGE_REGISTER_OP(floatPredicate("IsInf", [](const NodeContext& ctx, float x) {
  if (!std::isinf(x)) return false;
  return x > 0 ? ctx.attrs.getInt("detect_positive", 1) != 0 : ctx.attrs.getInt("detect_negative", 1) != 0;
}));

PLANFORGE_REGISTER_OP(OpDef{
    "Not",
    [](const NodeContext& ctx, const Infos& in) {
      if (info(ctx, in, 0).dtype != DataType::kBool) shapeError(ctx, "input must be bool");
      return sameAsInput0(ctx, in);
    },
    [](const NodeContext& ctx, const Inputs& in) {
      const Tensor& x = input(ctx, in, 0);
      if (x.dtype != DataType::kBool) shapeError(ctx, "input must be bool");
      Tensor out(DataType::kBool, x.shape);
      for (int64_t i = 0; i < x.numel(); ++i) out.data<uint8_t>()[i] = x.data<uint8_t>()[i] ? 0 : 1;
      return std::vector<Tensor>{std::move(out)};
    }});

}  // namespace ops
}  // namespace planforge
