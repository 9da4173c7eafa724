// QuantizeLinear / DequantizeLinear, per tensor (scalar scale) or per axis (1-D scale along `axis`).
#include <cmath>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

// Index into the scale / zero point for element i: 0 per tensor, else the coordinate along axis.
struct QuantIndex {
  int64_t inner = 1, dim = 1;
  bool perAxis = false;
  int64_t at(int64_t i) const { return perAxis ? (i / inner) % dim : 0; }
};

QuantIndex quantIndex(const NodeContext& ctx, const Tensor& x, const Tensor& scale) {
  QuantIndex q;
  if (scale.numel() == 1 && scale.shape.size() <= 1) return q;
  if (scale.shape.size() != 1) shapeError(ctx, "blocked quantization (scale rank > 1) is not supported");
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", 1), rank);
  if (x.shape[axis] != scale.numel())
    shapeError(ctx, "scale has " + std::to_string(scale.numel()) + " values for an axis of size " + std::to_string(x.shape[axis]));
  q.perAxis = true;
  q.dim = x.shape[axis];
  for (int64_t d = axis + 1; d < rank; ++d) q.inner *= x.shape[d];
  return q;
}

void quantRange(DataType t, double* lo, double* hi) {
  switch (t) {
    case DataType::kUint8: *lo = 0; *hi = 255; break;
    case DataType::kInt8: *lo = -128; *hi = 127; break;
    case DataType::kUint16: *lo = 0; *hi = 65535; break;
    case DataType::kInt16: *lo = -32768; *hi = 32767; break;
    case DataType::kInt32: *lo = -2147483648.0; *hi = 2147483647.0; break;
    default: throw BuildError(ErrorCode::kShape, std::string("unsupported quantized type ") + dataTypeName(t));
  }
}

DataType quantizedType(const NodeContext& ctx, const ValueInfo* zp) {
  if (zp && zp->present) return zp->dtype;
  const int64_t out = ctx.attrs.getInt("output_dtype", 0);
  return out != 0 ? static_cast<DataType>(out) : DataType::kUint8;
}

Tensor quantize(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 2, 3);
  const Tensor& x = input(ctx, in, 0);
  const Tensor& scale = input(ctx, in, 1);
  const Tensor* zp = hasInput(in, 2) ? in[2] : nullptr;
  ValueInfo zpInfo;
  zpInfo.present = zp != nullptr;
  if (zp) zpInfo.dtype = zp->dtype;
  const DataType qt = quantizedType(ctx, &zpInfo);
  double lo, hi;
  quantRange(qt, &lo, &hi);
  QuantIndex q = quantIndex(ctx, x, scale);
  if (zp && zp->numel() != scale.numel()) shapeError(ctx, "zero point and scale differ in size");
  std::vector<float> xv = toFloats(x), sv = toFloats(scale);
  Tensor y(qt, x.shape);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = q.at(i);
    const double z = zp ? static_cast<double>(zp->getInt64(k)) : 0.0;
    double v = std::nearbyint(static_cast<double>(xv[i]) / sv[k]) + z;  // round half to even
    v = std::min(std::max(v, lo), hi);
    setFromDouble(y, i, v);
  }
  return y;
}

Tensor dequantize(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 2, 3);
  const Tensor& x = input(ctx, in, 0);
  const Tensor& scale = input(ctx, in, 1);
  const Tensor* zp = hasInput(in, 2) ? in[2] : nullptr;
  if (zp && zp->dtype != x.dtype) shapeError(ctx, "zero point dtype differs from x");
  if (zp && zp->numel() != scale.numel()) shapeError(ctx, "zero point and scale differ in size");
  QuantIndex q = quantIndex(ctx, x, scale);
  std::vector<float> sv = toFloats(scale);
  std::vector<float> out(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = q.at(i);
    const int64_t z = zp ? zp->getInt64(k) : 0;
    out[i] = static_cast<float>(x.getInt64(i) - z) * sv[k];
  }
  return fromFloats(isFloatType(scale.dtype) ? scale.dtype : DataType::kFloat, x.shape, out.data());
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{
    "QuantizeLinear",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 3);
      ValueInfo v = sameAsInput0(ctx, in)[0];
      v.dtype = quantizedType(ctx, hasInfo(in, 2) ? &in[2] : nullptr);
      return std::vector<ValueInfo>{v};
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{quantize(ctx, in)}; }});

PLANFORGE_REGISTER_OP(OpDef{
    "DequantizeLinear",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 3);
      ValueInfo v = sameAsInput0(ctx, in)[0];
      v.dtype = isFloatType(info(ctx, in, 1).dtype) ? in[1].dtype : DataType::kFloat;
      return std::vector<ValueInfo>{v};
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{dequantize(ctx, in)}; }});

}  // namespace ops
}  // namespace planforge
