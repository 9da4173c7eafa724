// Numpy-broadcasting binary and variadic element-wise ops: arithmetic (Add, Sub, Mul,
// Div, Pow, Mod), variadic (Max, Min, Sum, Mean), comparisons and logical ops.
#include <cmath>
#include <type_traits>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

template <typename T>
T pyMod(T a, T b) {
  if constexpr (std::is_floating_point<T>::value) {
    T r = std::fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
  } else if constexpr (std::is_signed<T>::value) {
    if (b == 0) return 0;
    T r = static_cast<T>(a % b);
    if (r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
    return r;
  } else {
    return b == 0 ? 0 : static_cast<T>(a % b);
  }
}

template <typename T>
T cMod(T a, T b) {
  if constexpr (std::is_floating_point<T>::value) return std::fmod(a, b);
  else return b == 0 ? 0 : static_cast<T>(a % b);
}

enum class Arith { kAdd, kSub, kMul, kDiv, kMax, kMin, kMod, kFmod };

template <typename T>
void arith(Arith op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case Arith::kAdd: broadcastApply<T, T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x + y); }); break;
    case Arith::kSub: broadcastApply<T, T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x - y); }); break;
    case Arith::kMul: broadcastApply<T, T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x * y); }); break;
    case Arith::kDiv:
      if constexpr (std::is_integral<T>::value)
        broadcastApply<T, T, T>(a, b, out, [](T x, T y) { return y == 0 ? T(0) : static_cast<T>(x / y); });
      else
        broadcastApply<T, T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x / y); });
      break;
    case Arith::kMax:
      broadcastApply<T, T, T>(a, b, out, [](T x, T y) {
        if constexpr (std::is_floating_point<T>::value) { if (std::isnan(x) || std::isnan(y)) return x + y; }
        return x > y ? x : y;
      });
      break;
    case Arith::kMin:
      broadcastApply<T, T, T>(a, b, out, [](T x, T y) {
        if constexpr (std::is_floating_point<T>::value) { if (std::isnan(x) || std::isnan(y)) return x + y; }
        return x < y ? x : y;
      });
      break;
    case Arith::kMod: broadcastApply<T, T, T>(a, b, out, [](T x, T y) { return pyMod<T>(x, y); }); break;
    case Arith::kFmod: broadcastApply<T, T, T>(a, b, out, [](T x, T y) { return cMod<T>(x, y); }); break;
  }
}

Tensor arithTensors(const NodeContext& ctx, Arith op, const Tensor& a, const Tensor& b) {
  if (a.dtype != b.dtype)
    shapeError(ctx, std::string("input dtypes differ: ") + dataTypeName(a.dtype) + " vs " + dataTypeName(b.dtype));
  if (a.dtype == DataType::kFloat16 || a.dtype == DataType::kBFloat16) {
    Tensor r = arithTensors(ctx, op, toFloat32(a), toFloat32(b));
    return castFromFloat32(r, a.dtype);
  }
  Tensor out(a.dtype, broadcastShapes(ctx, a.shape, b.shape));
#define PF_ARITH(T) arith<T>(op, a, b, out)
  PLANFORGE_DISPATCH_NUMERIC(a.dtype, ctx, PF_ARITH)
#undef PF_ARITH
  return out;
}

std::vector<ValueInfo> inferBroadcast(const NodeContext& ctx, const Infos& in, DataType outType, bool sameType) {
  if (in.empty()) shapeError(ctx, "expects at least one input");
  Shape shape;
  bool known = true;
  for (size_t i = 0; i < in.size(); ++i) {
    const ValueInfo& v = info(ctx, in, i);
    if (sameType && v.dtype != in[0].dtype)
      shapeError(ctx, std::string("input dtypes differ: ") + dataTypeName(in[0].dtype) + " vs " + dataTypeName(v.dtype));
    if (!v.hasShape) known = false;
    else if (known) shape = i == 0 ? v.shape : broadcastShapes(ctx, shape, v.shape);
  }
  return {known ? makeInfo(outType, shape) : unknownRank(outType)};
}

OpDef arithOp(const char* name, Arith op) {
  return OpDef{
      name,
      [](const NodeContext& ctx, const Infos& in) {
        requireInputs(ctx, in.size(), 2, 2);
        return inferBroadcast(ctx, in, in[0].dtype, true);
      },
      [op](const NodeContext& ctx, const Inputs& in) {
        requireInputs(ctx, in.size(), 2, 2);
        Arith eff = op;
        if (op == Arith::kMod && ctx.attrs.getInt("fmod", 0) != 0) eff = Arith::kFmod;
        if (op == Arith::kMod && ctx.attrs.getInt("fmod", 0) == 0 && isFloatType(in[0] ? in[0]->dtype : DataType::kFloat))
          attrError(ctx, "fmod must be 1 for floating point inputs");
        return std::vector<Tensor>{arithTensors(ctx, eff, input(ctx, in, 0), input(ctx, in, 1))};
      }};
}

// Max / Min / Sum / Mean: one or more inputs, broadcast together.
OpDef variadicOp(const char* name, Arith op, bool mean) {
  return OpDef{
      name,
      [](const NodeContext& ctx, const Infos& in) { return inferBroadcast(ctx, in, in.empty() ? DataType::kFloat : in[0].dtype, true); },
      [op, mean](const NodeContext& ctx, const Inputs& in) {
        if (in.empty()) shapeError(ctx, "expects at least one input");
        Tensor acc = input(ctx, in, 0);
        for (size_t i = 1; i < in.size(); ++i) acc = arithTensors(ctx, op, acc, input(ctx, in, i));
        if (in.size() == 1) {
          // A single input still has to be a copy with the same dtype: nothing to do.
        }
        if (mean && in.size() > 1) {
          std::vector<float> v = toFloats(acc);
          for (auto& x : v) x /= static_cast<float>(in.size());
          acc = fromFloats(acc.dtype, acc.shape, v.data());
        }
        return std::vector<Tensor>{std::move(acc)};
      }};
}

template <typename T>
void powLoop(const Tensor& a, const Tensor& b, Tensor& out) {
  if (b.dtype == a.dtype) {
    broadcastApply<T, T, T>(a, b, out, [](T x, T y) { return static_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(y))); });
    return;
  }
  // Mixed exponent type (opset >= 12): exponent read as double.
  Tensor bd(DataType::kDouble, b.shape);
  for (int64_t i = 0; i < b.numel(); ++i) bd.data<double>()[i] = b.getDouble(i);
  broadcastApply<T, double, T>(a, bd, out, [](T x, double y) { return static_cast<T>(std::pow(static_cast<double>(x), y)); });
}

Tensor powTensors(const NodeContext& ctx, const Tensor& a, const Tensor& b) {
  if (a.dtype == DataType::kFloat16 || a.dtype == DataType::kBFloat16) {
    Tensor bf = (b.dtype == DataType::kFloat16 || b.dtype == DataType::kBFloat16) ? toFloat32(b) : b;
    return castFromFloat32(powTensors(ctx, toFloat32(a), bf), a.dtype);
  }
  if (a.dtype == DataType::kFloat && b.dtype == DataType::kFloat) {
    Tensor out(a.dtype, broadcastShapes(ctx, a.shape, b.shape));
    broadcastApply<float, float, float>(a, b, out, [](float x, float y) {
      return y == 2.f ? x * x : y == 0.5f ? std::sqrt(x) : std::pow(x, y);
    });
    return out;
  }
  Tensor out(a.dtype, broadcastShapes(ctx, a.shape, b.shape));
#define PF_POW(T) powLoop<T>(a, b, out)
  PLANFORGE_DISPATCH_NUMERIC(a.dtype, ctx, PF_POW)
#undef PF_POW
  return out;
}

enum class Cmp { kEq, kGt, kLt, kGe, kLe };

template <typename T>
void cmpLoop(Cmp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case Cmp::kEq: broadcastApply<T, T, uint8_t>(a, b, out, [](T x, T y) { return uint8_t(x == y); }); break;
    case Cmp::kGt: broadcastApply<T, T, uint8_t>(a, b, out, [](T x, T y) { return uint8_t(x > y); }); break;
    case Cmp::kLt: broadcastApply<T, T, uint8_t>(a, b, out, [](T x, T y) { return uint8_t(x < y); }); break;
    case Cmp::kGe: broadcastApply<T, T, uint8_t>(a, b, out, [](T x, T y) { return uint8_t(x >= y); }); break;
    case Cmp::kLe: broadcastApply<T, T, uint8_t>(a, b, out, [](T x, T y) { return uint8_t(x <= y); }); break;
  }
}

OpDef compareOp(const char* name, Cmp op) {
  return OpDef{
      name,
      [](const NodeContext& ctx, const Infos& in) {
        requireInputs(ctx, in.size(), 2, 2);
        return inferBroadcast(ctx, in, DataType::kBool, true);
      },
      [op](const NodeContext& ctx, const Inputs& in) {
        requireInputs(ctx, in.size(), 2, 2);
        Tensor a = input(ctx, in, 0), b = input(ctx, in, 1);
        if (a.dtype != b.dtype)
          shapeError(ctx, std::string("input dtypes differ: ") + dataTypeName(a.dtype) + " vs " + dataTypeName(b.dtype));
        if (a.dtype == DataType::kFloat16 || a.dtype == DataType::kBFloat16) {
          a = toFloat32(a);
          b = toFloat32(b);
        }
        Tensor out(DataType::kBool, broadcastShapes(ctx, a.shape, b.shape));
        if (a.dtype == DataType::kBool) {
          cmpLoop<uint8_t>(op, a, b, out);
        } else {
#define PF_CMP(T) cmpLoop<T>(op, a, b, out)
          PLANFORGE_DISPATCH_NUMERIC(a.dtype, ctx, PF_CMP)
#undef PF_CMP
        }
        return std::vector<Tensor>{std::move(out)};
      }};
}

enum class Logic { kAnd, kOr, kXor };

OpDef logicOp(const char* name, Logic op) {
  return OpDef{
      name,
      [](const NodeContext& ctx, const Infos& in) {
        requireInputs(ctx, in.size(), 2, 2);
        return inferBroadcast(ctx, in, DataType::kBool, false);
      },
      [op](const NodeContext& ctx, const Inputs& in) {
        requireInputs(ctx, in.size(), 2, 2);
        const Tensor& a = input(ctx, in, 0);
        const Tensor& b = input(ctx, in, 1);
        if (a.dtype != DataType::kBool || b.dtype != DataType::kBool) shapeError(ctx, "inputs must be bool");
        Tensor out(DataType::kBool, broadcastShapes(ctx, a.shape, b.shape));
        switch (op) {
          case Logic::kAnd: broadcastApply<uint8_t, uint8_t, uint8_t>(a, b, out, [](uint8_t x, uint8_t y) { return uint8_t(x && y); }); break;
          case Logic::kOr: broadcastApply<uint8_t, uint8_t, uint8_t>(a, b, out, [](uint8_t x, uint8_t y) { return uint8_t(x || y); }); break;
          case Logic::kXor: broadcastApply<uint8_t, uint8_t, uint8_t>(a, b, out, [](uint8_t x, uint8_t y) { return uint8_t((x != 0) != (y != 0)); }); break;
        }
        return std::vector<Tensor>{std::move(out)};
      }};
}

}  // namespace

PLANFORGE_REGISTER_OP(arithOp("Add", Arith::kAdd));
PLANFORGE_REGISTER_OP(arithOp("Sub", Arith::kSub));
PLANFORGE_REGISTER_OP(arithOp("Mul", Arith::kMul));
PLANFORGE_REGISTER_OP(arithOp("Div", Arith::kDiv));
PLANFORGE_REGISTER_OP(arithOp("Mod", Arith::kMod));
PLANFORGE_REGISTER_OP(variadicOp("Max", Arith::kMax, false));
PLANFORGE_REGISTER_OP(variadicOp("Min", Arith::kMin, false));
PLANFORGE_REGISTER_OP(variadicOp("Sum", Arith::kAdd, false));
PLANFORGE_REGISTER_OP(variadicOp("Mean", Arith::kAdd, true));
PLANFORGE_REGISTER_OP(OpDef{
    "Pow",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return inferBroadcast(ctx, in, in[0].dtype, false);
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<Tensor>{powTensors(ctx, input(ctx, in, 0), input(ctx, in, 1))};
    }});
PLANFORGE_REGISTER_OP(compareOp("Equal", Cmp::kEq));
PLANFORGE_REGISTER_OP(compareOp("Greater", Cmp::kGt));
PLANFORGE_REGISTER_OP(compareOp("Less", Cmp::kLt));
PLANFORGE_REGISTER_OP(compareOp("GreaterOrEqual", Cmp::kGe));
PLANFORGE_REGISTER_OP(compareOp("LessOrEqual", Cmp::kLe));
PLANFORGE_REGISTER_OP(logicOp("And", Logic::kAnd));
PLANFORGE_REGISTER_OP(logicOp("Or", Logic::kOr));
PLANFORGE_REGISTER_OP(logicOp("Xor", Logic::kXor));
}  // namespace ops
}  // namespace planforge
