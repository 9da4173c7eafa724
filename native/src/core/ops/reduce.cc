// Reductions (ReduceMean/Sum/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare) and ArgMax/ArgMin.
// Axes come from the `axes` input when present (ReduceSum opset >= 13, the others >= 18),
// otherwise from the attribute; empty axes reduce everything unless noop_with_empty_axes.
#include <algorithm>
#include <cmath>
#include <limits>

#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

enum class Red { kMean, kSum, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

// Which axes are reduced; `known` false when the axes input is not a constant.
std::vector<bool> reducedAxes(const NodeContext& ctx, int64_t rank, const std::vector<int64_t>& axes, bool fromInput,
                              bool* noop) {
  std::vector<bool> r(static_cast<size_t>(rank), false);
  *noop = false;
  if (axes.empty()) {
    if (fromInput && ctx.attrs.getInt("noop_with_empty_axes", 0) != 0) {
      *noop = true;
      return r;
    }
    if (!fromInput && ctx.attrs.getInt("noop_with_empty_axes", 0) != 0 && !ctx.attrs.has("axes")) {
      *noop = true;
      return r;
    }
    r.assign(static_cast<size_t>(rank), true);
    return r;
  }
  for (auto a : axes) r[static_cast<size_t>(normalizeAxis(ctx, a, rank))] = true;
  return r;
}

std::vector<int64_t> axesOf(const NodeContext& ctx, bool haveInput, const Tensor* axesInput) {
  if (haveInput) return axesInput ? axesInput->toInt64Vector() : std::vector<int64_t>{};
  return ctx.attrs.getInts("axes", {});
}

Shape reducedShape(const Shape& in, const std::vector<bool>& red, bool keep) {
  Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!red[i]) out.push_back(in[i]);
    else if (keep) out.push_back(1);
  }
  return out;
}

std::vector<ValueInfo> inferReduce(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  const bool keep = ctx.attrs.getInt("keepdims", 1) != 0;
  if (!x.hasShape) return {unknownRank(x.dtype)};
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const bool fromInput = hasInfo(in, 1);
  if (fromInput && in[1].constValue == nullptr) {
    if (keep) return {makeInfo(x.dtype, Shape(x.shape.size(), -1))};
    return {unknownRank(x.dtype)};
  }
  bool noop;
  std::vector<bool> red = reducedAxes(ctx, rank, axesOf(ctx, fromInput, fromInput ? in[1].constValue : nullptr), fromInput, &noop);
  if (noop) return sameAsInput0(ctx, in);
  return {makeInfo(x.dtype, reducedShape(x.shape, red, keep))};
}

Tensor reduce(const NodeContext& ctx, const Inputs& in, Red kind) {
  const Tensor& x = input(ctx, in, 0);
  const bool keep = ctx.attrs.getInt("keepdims", 1) != 0;
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const bool fromInput = hasInput(in, 1);
  bool noop;
  std::vector<bool> red = reducedAxes(ctx, rank, axesOf(ctx, fromInput, fromInput ? in[1] : nullptr), fromInput, &noop);
  if (noop) return x;
  Shape keptShape = reducedShape(x.shape, red, true);
  Tensor out(x.dtype, reducedShape(x.shape, red, keep));
  const int64_t outN = shapeNumel(keptShape);
  double init = 0;
  if (kind == Red::kMax) init = -std::numeric_limits<double>::infinity();
  if (kind == Red::kMin) init = std::numeric_limits<double>::infinity();
  if (kind == Red::kProd) init = 1;
  std::vector<double> acc(static_cast<size_t>(outN), init);
  // Output offset of each input element: strides of the kept shape, 0 on reduced axes.
  Shape ks = stridesOf(keptShape);
  Shape st(static_cast<size_t>(rank), 0);
  for (int64_t i = 0; i < rank; ++i) st[i] = red[i] ? 0 : ks[i];
  const int64_t n = x.numel();
  int64_t count = 1;
  for (int64_t i = 0; i < rank; ++i)
    if (red[i]) count *= x.shape[i];
  if (outN == 0) return out;
  std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
  int64_t off = 0;
  const bool isF32 = x.dtype == DataType::kFloat;
  for (int64_t i = 0; i < n; ++i) {
    const double v = isF32 ? x.data<float>()[i] : x.getDouble(i);
    double& a = acc[static_cast<size_t>(off)];
    switch (kind) {
      case Red::kMean: case Red::kSum: case Red::kLogSum: a += v; break;
      case Red::kMax: if (v > a || std::isnan(v)) a = v; break;
      case Red::kMin: if (v < a || std::isnan(v)) a = v; break;
      case Red::kProd: a *= v; break;
      case Red::kL1: a += std::fabs(v); break;
      case Red::kL2: case Red::kSumSquare: a += v * v; break;
      case Red::kLogSumExp: a += std::exp(v); break;
    }
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++idx[d] < x.shape[d]) {
        off += st[d];
        break;
      }
      off -= st[d] * (x.shape[d] - 1);
      idx[d] = 0;
    }
  }
  for (int64_t o = 0; o < outN; ++o) {
    double v = acc[static_cast<size_t>(o)];
    if (kind == Red::kMean) v = count ? v / count : std::nan("");
    if (kind == Red::kL2) v = std::sqrt(v);
    if (kind == Red::kLogSum || kind == Red::kLogSumExp) v = std::log(v);
    setFromDouble(out, o, v);
  }
  return out;
}

OpDef reduceOp(const char* name, Red kind) {
  return OpDef{name, inferReduce, [kind](const NodeContext& ctx, const Inputs& in) {
                 return std::vector<Tensor>{reduce(ctx, in, kind)};
               }};
}

std::vector<ValueInfo> inferArg(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  if (!x.hasShape) return {unknownRank(DataType::kInt64)};
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", 0), rank);
  Shape s = x.shape;
  if (ctx.attrs.getInt("keepdims", 1) != 0) s[axis] = 1;
  else s.erase(s.begin() + axis);
  return {makeInfo(DataType::kInt64, s)};
}

Tensor argReduce(const NodeContext& ctx, const Tensor& x, bool isMax) {
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", 0), rank);
  const bool last = ctx.attrs.getInt("select_last_index", 0) != 0;
  Shape s = x.shape;
  if (ctx.attrs.getInt("keepdims", 1) != 0) s[axis] = 1;
  else s.erase(s.begin() + axis);
  Tensor out(DataType::kInt64, s);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape[i];
  for (int64_t i = axis + 1; i < rank; ++i) inner *= x.shape[i];
  const int64_t n = x.shape[axis];
  if (n == 0) shapeError(ctx, "cannot take the arg of an empty axis");
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;
      double bv = x.getDouble(o * n * inner + i);
      for (int64_t k = 1; k < n; ++k) {
        const double v = x.getDouble((o * n + k) * inner + i);
        const bool better = isMax ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
        if (better) {
          bv = v;
          best = k;
        }
      }
      out.data<int64_t>()[o * inner + i] = best;
    }
  return out;
}

}  // namespace

PLANFORGE_REGISTER_OP(reduceOp("ReduceMean", Red::kMean));
PLANFORGE_REGISTER_OP(reduceOp("ReduceSum", Red::kSum));
PLANFORGE_REGISTER_OP(reduceOp("ReduceMax", Red::kMax));
PLANFORGE_REGISTER_OP(reduceOp("ReduceMin", Red::kMin));
PLANFORGE_REGISTER_OP(reduceOp("ReduceProd", Red::kProd));
PLANFORGE_REGISTER_OP(reduceOp("ReduceL1", Red::kL1));
PLANFORGE_REGISTER_OP(reduceOp("ReduceL2", Red::kL2));
PLANFORGE_REGISTER_OP(reduceOp("ReduceLogSum", Red::kLogSum));
PLANFORGE_REGISTER_OP(reduceOp("ReduceLogSumExp", Red::kLogSumExp));
PLANFORGE_REGISTER_OP(reduceOp("ReduceSumSquare", Red::kSumSquare));
PLANFORGE_REGISTER_OP(OpDef{"ArgMax", inferArg, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{argReduce(ctx, input(ctx, in, 0), true)};
                            }});
PLANFORGE_REGISTER_OP(OpDef{"ArgMin", inferArg, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{argReduce(ctx, input(ctx, in, 0), false)};
                            }});

}  // namespace ops
}  // namespace planforge
