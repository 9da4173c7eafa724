// Helpers shared by the CPU reference kernels: argument access, errors, dtype
// conversion, axis normalization, broadcasting and the common infer shapes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../op_registry.h"
#include "../tensor.h"

namespace planforge {
namespace ops {

using Inputs = std::vector<const Tensor*>;
using Infos = std::vector<ValueInfo>;

// "OpType 'name': msg" as BuildError(kShape) (shape / value errors) or kInvalidModel (bad attributes).
[[noreturn]] void shapeError(const NodeContext& ctx, const std::string& msg);
[[noreturn]] void attrError(const NodeContext& ctx, const std::string& msg);

// Input i, which must be present.
const Tensor& input(const NodeContext& ctx, const Inputs& in, size_t i);
bool hasInput(const Inputs& in, size_t i);
const ValueInfo& info(const NodeContext& ctx, const Infos& in, size_t i);
bool hasInfo(const Infos& in, size_t i);
void requireInputs(const NodeContext& ctx, size_t count, size_t min, size_t max);

bool isFloatType(DataType t);  // float32/16, bfloat16, double
bool isIntType(DataType t);    // signed / unsigned integers (not bool)
void requireFloat(const NodeContext& ctx, const Tensor& t, const char* what);

// Element-wise conversion of any numeric tensor to float32 values and back.
std::vector<float> toFloats(const Tensor& t);
Tensor fromFloats(DataType dtype, const Shape& shape, const float* values);
// Writes value v (as double) at element i of t, casting to t's dtype.
void setFromDouble(Tensor& t, int64_t i, double v);

// Normalizes a possibly negative axis into [0, rank); BuildError(kShape) when out of range.
int64_t normalizeAxis(const NodeContext& ctx, int64_t axis, int64_t rank);

Shape stridesOf(const Shape& s);

// Numpy broadcast of two shapes; -1 (unknown) dims broadcast against 1 or another -1 as -1.
Shape broadcastShapes(const NodeContext& ctx, const Shape& a, const Shape& b);
// Strides of `s` aligned to `out` (rank(out) >= rank(s)); 0 where s broadcasts.
Shape broadcastStrides(const Shape& s, const Shape& out);

// Multi-dimensional counter used to walk an output shape while tracking input offsets.
// Visits every index of `shape` in row-major order; offsets[k] follows strides[k].
template <typename F>
void forEachBroadcast(const Shape& shape, const std::vector<Shape>& strides, F&& f) {
  const size_t rank = shape.size();
  const size_t n = strides.size();
  int64_t total = 1;
  for (auto d : shape) total *= d;
  if (total == 0) return;
  std::vector<int64_t> idx(rank, 0);
  std::vector<int64_t> off(n, 0);
  // Innermost dimension is walked in a tight loop.
  const int64_t inner = rank ? shape[rank - 1] : 1;
  std::vector<int64_t> innerStride(n, 0);
  for (size_t k = 0; k < n; ++k) innerStride[k] = rank ? strides[k][rank - 1] : 0;
  for (int64_t outer = 0; outer < total / inner; ++outer) {
    f(outer * inner, inner, off, innerStride);
    // Advance the outer index (all dims but the last).
    for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        for (size_t k = 0; k < n; ++k) off[k] += strides[k][d];
        break;
      }
      for (size_t k = 0; k < n; ++k) off[k] -= strides[k][d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

// Infer helpers.
ValueInfo makeInfo(DataType t, const Shape& s);
ValueInfo unknownRank(DataType t);
std::vector<ValueInfo> sameAsInput0(const NodeContext& ctx, const Infos& in);

// Integer list from a 1-D constant input, or from an attribute; `known` false when not constant.
std::vector<int64_t> constInts(const ValueInfo& v, bool* known);

// Runs f(T*) style dispatch over the numeric types, for kernels templated on element type.
#define PLANFORGE_DISPATCH_NUMERIC(DTYPE, CTX, FN)                                            \
  switch (DTYPE) {                                                                           \
    case DataType::kFloat: FN(float); break;                                                 \
    case DataType::kDouble: FN(double); break;                                               \
    case DataType::kInt64: FN(int64_t); break;                                               \
    case DataType::kInt32: FN(int32_t); break;                                               \
    case DataType::kInt16: FN(int16_t); break;                                               \
    case DataType::kInt8: FN(int8_t); break;                                                 \
    case DataType::kUint8: FN(uint8_t); break;                                               \
    case DataType::kUint16: FN(uint16_t); break;                                             \
    case DataType::kUint32: FN(uint32_t); break;                                             \
    case DataType::kUint64: FN(uint64_t); break;                                             \
    default: ::planforge::ops::shapeError(CTX, std::string("unsupported dtype ") + dataTypeName(DTYPE)); \
  }

}  // namespace ops
}  // namespace planforge
