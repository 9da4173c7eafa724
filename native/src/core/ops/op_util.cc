#include "op_util.h"

#include "elementwise.h"

#include <cmath>
#include <cstring>

#include "../half.h"

namespace planforge {
namespace ops {

static std::string where(const NodeContext& ctx) {
  return ctx.opType + (ctx.name.empty() ? std::string() : " '" + ctx.name + "'") + ": ";
}

void shapeError(const NodeContext& ctx, const std::string& msg) {
  throw BuildError(ErrorCode::kShape, where(ctx) + msg);
}

void attrError(const NodeContext& ctx, const std::string& msg) {
  throw BuildError(ErrorCode::kInvalidModel, where(ctx) + msg);
}

const Tensor& input(const NodeContext& ctx, const Inputs& in, size_t i) {
  if (i >= in.size() || in[i] == nullptr) shapeError(ctx, "missing required input " + std::to_string(i));
  return *in[i];
}

bool hasInput(const Inputs& in, size_t i) { return i < in.size() && in[i] != nullptr; }

const ValueInfo& info(const NodeContext& ctx, const Infos& in, size_t i) {
  if (i >= in.size() || !in[i].present) shapeError(ctx, "missing required input " + std::to_string(i));
  return in[i];
}

bool hasInfo(const Infos& in, size_t i) { return i < in.size() && in[i].present; }

void requireInputs(const NodeContext& ctx, size_t count, size_t min, size_t max) {
  if (count < min || count > max)
    shapeError(ctx, "expects " + std::to_string(min) + (min == max ? "" : ".." + std::to_string(max)) +
                        " inputs, got " + std::to_string(count));
}

bool isFloatType(DataType t) {
  return t == DataType::kFloat || t == DataType::kFloat16 || t == DataType::kBFloat16 || t == DataType::kDouble;
}

bool isIntType(DataType t) {
  switch (t) {
    case DataType::kInt8: case DataType::kInt16: case DataType::kInt32: case DataType::kInt64:
    case DataType::kUint8: case DataType::kUint16: case DataType::kUint32: case DataType::kUint64:
      return true;
    default:
      return false;
  }
}

void requireFloat(const NodeContext& ctx, const Tensor& t, const char* what) {
  if (!isFloatType(t.dtype)) shapeError(ctx, std::string(what) + " must be a float tensor, got " + dataTypeName(t.dtype));
}

std::vector<float> toFloats(const Tensor& t) {
  const int64_t n = t.numel();
  std::vector<float> out(static_cast<size_t>(n));
  switch (t.dtype) {
    case DataType::kFloat:
      if (n) std::memcpy(out.data(), t.bytes.data(), static_cast<size_t>(n) * 4);
      break;
    case DataType::kFloat16: {
      const uint16_t* p = t.data<uint16_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = halfToFloat(p[i]);
      break;
    }
    case DataType::kBFloat16: {
      const uint16_t* p = t.data<uint16_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = bfloat16ToFloat(p[i]);
      break;
    }
    default:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(t.getDouble(i));
  }
  return out;
}

void setFromDouble(Tensor& t, int64_t i, double v) {
  switch (t.dtype) {
    case DataType::kFloat: t.data<float>()[i] = static_cast<float>(v); break;
    case DataType::kDouble: t.data<double>()[i] = v; break;
    case DataType::kFloat16: t.data<uint16_t>()[i] = floatToHalf(static_cast<float>(v)); break;
    case DataType::kBFloat16: t.data<uint16_t>()[i] = floatToBfloat16(static_cast<float>(v)); break;
    case DataType::kInt64: t.data<int64_t>()[i] = static_cast<int64_t>(v); break;
    case DataType::kInt32: t.data<int32_t>()[i] = static_cast<int32_t>(v); break;
    case DataType::kInt16: t.data<int16_t>()[i] = static_cast<int16_t>(v); break;
    case DataType::kInt8: t.data<int8_t>()[i] = static_cast<int8_t>(v); break;
    case DataType::kUint8: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
    case DataType::kUint16: t.data<uint16_t>()[i] = static_cast<uint16_t>(v); break;
    case DataType::kUint32: t.data<uint32_t>()[i] = static_cast<uint32_t>(v); break;
    case DataType::kUint64: t.data<uint64_t>()[i] = static_cast<uint64_t>(v); break;
    case DataType::kBool: t.data<uint8_t>()[i] = v != 0 ? 1 : 0; break;
    default: throw BuildError(ErrorCode::kInternal, std::string("cannot store into ") + dataTypeName(t.dtype));
  }
}

Tensor fromFloats(DataType dtype, const Shape& shape, const float* values) {
  Tensor t(dtype, shape);
  const int64_t n = t.numel();
  if (dtype == DataType::kFloat) {
    if (n) std::memcpy(t.bytes.data(), values, static_cast<size_t>(n) * 4);
  } else if (dtype == DataType::kFloat16) {
    uint16_t* p = t.data<uint16_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = floatToHalf(values[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) setFromDouble(t, i, values[i]);
  }
  return t;
}

int64_t normalizeAxis(const NodeContext& ctx, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    shapeError(ctx, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  return a;
}

Shape stridesOf(const Shape& s) {
  Shape st(s.size(), 1);
  for (int64_t i = static_cast<int64_t>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

Shape broadcastShapes(const NodeContext& ctx, const Shape& a, const Shape& b) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da == db) out[i] = da;
    else if (da == 1) out[i] = db;
    else if (db == 1) out[i] = da;
    else if (da < 0) out[i] = db;  // unknown must equal the known one (or be 1: then broadcast anyway)
    else if (db < 0) out[i] = da;
    else
      shapeError(ctx, "cannot broadcast shapes " + shapeToString(a) + " and " + shapeToString(b));
  }
  return out;
}

Shape broadcastStrides(const Shape& s, const Shape& out) {
  Shape st = stridesOf(s);
  Shape res(out.size(), 0);
  const size_t off = out.size() - s.size();
  for (size_t i = 0; i < s.size(); ++i) res[off + i] = s[i] == 1 ? 0 : st[i];
  return res;
}

ValueInfo makeInfo(DataType t, const Shape& s) {
  ValueInfo v;
  v.dtype = t;
  v.shape = s;
  v.hasShape = true;
  return v;
}

ValueInfo unknownRank(DataType t) {
  ValueInfo v;
  v.dtype = t;
  v.hasShape = false;
  return v;
}

std::vector<ValueInfo> sameAsInput0(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  ValueInfo v = x;
  v.constValue = nullptr;
  v.present = true;
  return {v};
}

std::vector<int64_t> constInts(const ValueInfo& v, bool* known) {
  if (!v.present || v.constValue == nullptr) {
    *known = false;
    return {};
  }
  *known = true;
  return v.constValue->toInt64Vector();
}

Tensor toFloat32(const Tensor& t) {
  if (t.dtype == DataType::kFloat) return t;
  std::vector<float> v = toFloats(t);
  return fromFloats(DataType::kFloat, t.shape, v.data());
}

Tensor castFromFloat32(const Tensor& t, DataType dtype) {
  if (dtype == DataType::kFloat) return t;
  return fromFloats(dtype, t.shape, t.data<float>());
}

}  // namespace ops
}  // namespace planforge
