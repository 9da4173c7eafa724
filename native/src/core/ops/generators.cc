// Ops producing or re-typing values: Constant, ConstantOfShape, Range, Cast, CastLike, Where.
#include <cmath>
#include <cstring>
#include <limits>

#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

// ---- Constant ----

Tensor constantValue(const NodeContext& ctx) {
  const Attributes& a = ctx.attrs;
  if (const Tensor* t = a.getTensor("value")) return *t;
  if (a.has("value_float")) {
    Tensor t(DataType::kFloat, {});
    t.data<float>()[0] = a.getFloat("value_float", 0);
    return t;
  }
  if (a.has("value_floats")) {
    std::vector<float> v = a.getFloats("value_floats");
    Tensor t(DataType::kFloat, {static_cast<int64_t>(v.size())});
    if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), v.size() * sizeof(float));
    return t;
  }
  if (a.has("value_int")) {
    Tensor t(DataType::kInt64, {});
    t.data<int64_t>()[0] = a.getInt("value_int", 0);
    return t;
  }
  if (a.has("value_ints")) {
    std::vector<int64_t> v = a.getInts("value_ints");
    Tensor t(DataType::kInt64, {static_cast<int64_t>(v.size())});
    if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), v.size() * sizeof(int64_t));
    return t;
  }
  attrError(ctx, "needs a value, value_float(s) or value_int(s) attribute (string and sparse values are not supported)");
}

// ---- ConstantOfShape ----

Tensor constantOfShape(const NodeContext& ctx, const Tensor& shapeT) {
  std::vector<int64_t> shape = shapeT.toInt64Vector();
  for (auto d : shape)
    if (d < 0) shapeError(ctx, "negative dimension in shape " + shapeToString(shape));
  const Tensor* value = ctx.attrs.getTensor("value");
  if (value && value->numel() != 1) attrError(ctx, "value must have exactly one element");
  Tensor t(value ? value->dtype : DataType::kFloat, shape);
  if (value) {
    const size_t es = dataTypeSize(t.dtype);
    bool zero = true;
    for (size_t i = 0; i < es; ++i) zero = zero && value->bytes[i] == 0;
    if (!zero)
      for (int64_t i = 0; i < t.numel(); ++i) std::memcpy(t.bytes.data() + i * es, value->bytes.data(), es);
  }
  return t;
}

// ---- Range ----

template <typename T>
Tensor rangeTyped(DataType dt, T start, T limit, T delta) {
  const double n = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
  const int64_t count = n > 0 ? static_cast<int64_t>(n) : 0;
  Tensor t(dt, {count});
  T v = start;
  for (int64_t i = 0; i < count; ++i) {
    t.data<T>()[i] = v;
    v = static_cast<T>(v + delta);
  }
  return t;
}

Tensor range(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 3, 3);
  const Tensor& s = input(ctx, in, 0);
  const Tensor& l = input(ctx, in, 1);
  const Tensor& d = input(ctx, in, 2);
  if (s.numel() != 1 || l.numel() != 1 || d.numel() != 1) shapeError(ctx, "start, limit and delta must be scalars");
  if (d.getDouble(0) == 0) shapeError(ctx, "delta must not be 0");
  switch (s.dtype) {
    case DataType::kFloat: return rangeTyped<float>(s.dtype, s.data<float>()[0], static_cast<float>(l.getDouble(0)), static_cast<float>(d.getDouble(0)));
    case DataType::kDouble: return rangeTyped<double>(s.dtype, s.getDouble(0), l.getDouble(0), d.getDouble(0));
    case DataType::kInt64: return rangeTyped<int64_t>(s.dtype, s.getInt64(0), l.getInt64(0), d.getInt64(0));
    case DataType::kInt32: return rangeTyped<int32_t>(s.dtype, static_cast<int32_t>(s.getInt64(0)), static_cast<int32_t>(l.getInt64(0)), static_cast<int32_t>(d.getInt64(0)));
    case DataType::kInt16: return rangeTyped<int16_t>(s.dtype, static_cast<int16_t>(s.getInt64(0)), static_cast<int16_t>(l.getInt64(0)), static_cast<int16_t>(d.getInt64(0)));
    default: shapeError(ctx, std::string("unsupported dtype ") + dataTypeName(s.dtype));
  }
}

// ---- Cast ----

bool isUnsigned(DataType t) {
  return t == DataType::kUint8 || t == DataType::kUint16 || t == DataType::kUint32 || t == DataType::kUint64;
}

Tensor cast(const NodeContext& ctx, const Tensor& x, DataType to) {
  if (to == DataType::kString || to == DataType::kUndefined || x.dtype == DataType::kString)
    shapeError(ctx, "string casts are not supported");
  if (x.dtype == to) return x;
  Tensor r(to, x.shape);
  const int64_t n = x.numel();
  const bool srcInt = isIntType(x.dtype) || x.dtype == DataType::kBool;
  const bool dstInt = isIntType(to) || to == DataType::kBool;
  for (int64_t i = 0; i < n; ++i) {
    if (to == DataType::kBool) {
      r.data<uint8_t>()[i] = x.getDouble(i) != 0 ? 1 : 0;
    } else if (srcInt && dstInt) {
      // Exact integer path (wraps like a C cast, as ONNX runtimes do).
      const int64_t v = x.dtype == DataType::kUint64 ? static_cast<int64_t>(x.data<uint64_t>()[i]) : x.getInt64(i);
      switch (to) {
        case DataType::kInt64: r.data<int64_t>()[i] = v; break;
        case DataType::kInt32: r.data<int32_t>()[i] = static_cast<int32_t>(v); break;
        case DataType::kInt16: r.data<int16_t>()[i] = static_cast<int16_t>(v); break;
        case DataType::kInt8: r.data<int8_t>()[i] = static_cast<int8_t>(v); break;
        case DataType::kUint8: r.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
        case DataType::kUint16: r.data<uint16_t>()[i] = static_cast<uint16_t>(v); break;
        case DataType::kUint32: r.data<uint32_t>()[i] = static_cast<uint32_t>(v); break;
        case DataType::kUint64: r.data<uint64_t>()[i] = static_cast<uint64_t>(v); break;
        default: break;
      }
    } else if (dstInt) {
      // Float -> int truncates toward zero; NaN/inf/out of range saturate instead of being UB.
      double v = std::trunc(x.getDouble(i));
      if (std::isnan(v)) v = 0;
      const double lo = isUnsigned(to) ? 0.0 : -9.2e18, hi = 1.8e19;
      v = std::min(std::max(v, lo), hi);
      if (to == DataType::kInt64) r.data<int64_t>()[i] = v >= 9.2e18 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(v);
      else if (to == DataType::kUint64) r.data<uint64_t>()[i] = static_cast<uint64_t>(v);
      else setFromDouble(r, i, static_cast<double>(static_cast<int64_t>(std::min(v, 9.2e18))));
    } else {
      setFromDouble(r, i, x.dtype == DataType::kInt64 ? static_cast<double>(x.data<int64_t>()[i]) : x.getDouble(i));
    }
  }
  return r;
}

DataType castTarget(const NodeContext& ctx) {
  if (!ctx.attrs.has("to")) attrError(ctx, "attribute 'to' is required");
  const DataType to = static_cast<DataType>(ctx.attrs.getInt("to", 0));
  dataTypeSize(to);  // throws for undefined / string
  return to;
}

// ---- Where ----

Tensor where(const NodeContext& ctx, const Tensor& c, const Tensor& x, const Tensor& y) {
  if (c.dtype != DataType::kBool) shapeError(ctx, "condition must be bool");
  if (x.dtype != y.dtype) shapeError(ctx, "X and Y dtypes differ");
  Shape out = broadcastShapes(ctx, broadcastShapes(ctx, c.shape, x.shape), y.shape);
  Tensor r(x.dtype, out);
  const size_t es = dataTypeSize(x.dtype);
  std::vector<Shape> strides{broadcastStrides(c.shape, out), broadcastStrides(x.shape, out), broadcastStrides(y.shape, out)};
  const uint8_t* cp = c.data<uint8_t>();
  forEachBroadcast(out, strides, [&](int64_t o, int64_t len, const std::vector<int64_t>& off, const std::vector<int64_t>& inner) {
    for (int64_t i = 0; i < len; ++i) {
      const bool take = cp[off[0] + i * inner[0]] != 0;
      const uint8_t* src = take ? x.bytes.data() + (off[1] + i * inner[1]) * es : y.bytes.data() + (off[2] + i * inner[2]) * es;
      std::memcpy(r.bytes.data() + (o + i) * es, src, es);
    }
  });
  return r;
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{
    "Constant",
    [](const NodeContext& ctx, const Infos&) {
      Tensor t = constantValue(ctx);
      return std::vector<ValueInfo>{makeInfo(t.dtype, t.shape)};
    },
    [](const NodeContext& ctx, const Inputs&) { return std::vector<Tensor>{constantValue(ctx)}; }});

PLANFORGE_REGISTER_OP(OpDef{
    "ConstantOfShape",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& s = info(ctx, in, 0);
      const Tensor* value = ctx.attrs.getTensor("value");
      const DataType dt = value ? value->dtype : DataType::kFloat;
      if (s.constValue) return std::vector<ValueInfo>{makeInfo(dt, s.constValue->toInt64Vector())};
      if (s.hasShape && s.shape.size() == 1 && s.shape[0] >= 0)
        return std::vector<ValueInfo>{makeInfo(dt, Shape(static_cast<size_t>(s.shape[0]), -1))};
      return std::vector<ValueInfo>{unknownRank(dt)};
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{constantOfShape(ctx, input(ctx, in, 0))}; }});

PLANFORGE_REGISTER_OP(OpDef{
    "Range",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 3, 3);
      const DataType dt = info(ctx, in, 0).dtype;
      if (in[0].constValue && in[1].constValue && in[2].constValue) {
        std::vector<const Tensor*> vals{in[0].constValue, in[1].constValue, in[2].constValue};
        return std::vector<ValueInfo>{makeInfo(dt, range(ctx, vals).shape)};
      }
      return std::vector<ValueInfo>{makeInfo(dt, {-1})};
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{range(ctx, in)}; }});

PLANFORGE_REGISTER_OP(OpDef{
    "Cast",
    [](const NodeContext& ctx, const Infos& in) {
      ValueInfo v = sameAsInput0(ctx, in)[0];
      v.dtype = castTarget(ctx);
      return std::vector<ValueInfo>{v};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      return std::vector<Tensor>{cast(ctx, input(ctx, in, 0), castTarget(ctx))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "CastLike",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 2);
      ValueInfo v = sameAsInput0(ctx, in)[0];
      v.dtype = info(ctx, in, 1).dtype;
      return std::vector<ValueInfo>{v};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<Tensor>{cast(ctx, input(ctx, in, 0), input(ctx, in, 1).dtype)};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "Where",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 3, 3);
      const ValueInfo& c = info(ctx, in, 0);
      const ValueInfo& x = info(ctx, in, 1);
      const ValueInfo& y = info(ctx, in, 2);
      if (!c.hasShape || !x.hasShape || !y.hasShape) return std::vector<ValueInfo>{unknownRank(x.dtype)};
      return std::vector<ValueInfo>{makeInfo(x.dtype, broadcastShapes(ctx, broadcastShapes(ctx, c.shape, x.shape), y.shape))};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 3, 3);
      return std::vector<Tensor>{where(ctx, input(ctx, in, 0), input(ctx, in, 1), input(ctx, in, 2))};
    }});

}  // namespace ops
}  // namespace planforge
