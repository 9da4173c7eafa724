// Index-driven ops: GatherND, ScatterND, ScatterElements (and legacy Scatter), OneHot, NonZero,
// TopK, CumSum, Trilu.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

int64_t checkedIndex(const NodeContext& ctx, int64_t i, int64_t dim) {
  if (i < -dim || i >= dim) shapeError(ctx, "index " + std::to_string(i) + " out of range for a dimension of size " + std::to_string(dim));
  return i < 0 ? i + dim : i;
}

// ---- GatherND ----

Shape gatherNDShape(const NodeContext& ctx, const Shape& data, const Shape& idx) {
  const int64_t b = ctx.attrs.getInt("batch_dims", 0);
  if (idx.empty()) shapeError(ctx, "indices must be at least 1-D");
  const int64_t last = idx.back();
  if (b < 0 || b >= static_cast<int64_t>(std::min(data.size(), idx.size()))) attrError(ctx, "batch_dims out of range");
  if (last >= 0 && b + last > static_cast<int64_t>(data.size())) shapeError(ctx, "indices last dim too large for data rank");
  Shape out(idx.begin(), idx.end() - 1);
  if (last < 0) return out;
  out.insert(out.end(), data.begin() + b + last, data.end());
  return out;
}

Tensor gatherND(const NodeContext& ctx, const Tensor& data, const Tensor& indices) {
  const int64_t b = ctx.attrs.getInt("batch_dims", 0);
  Shape out = gatherNDShape(ctx, data.shape, indices.shape);
  Tensor r(data.dtype, out);
  const int64_t last = indices.shape.back();
  const size_t es = dataTypeSize(data.dtype);
  int64_t batch = 1;
  for (int64_t d = 0; d < b; ++d) {
    if (data.shape[d] != indices.shape[d]) shapeError(ctx, "batch dims of data and indices differ");
    batch *= data.shape[d];
  }
  int64_t slice = 1;
  for (size_t d = b + last; d < data.shape.size(); ++d) slice *= data.shape[d];
  Shape ds = stridesOf(data.shape);
  const int64_t perBatchData = b == 0 ? data.numel() : ds[b - 1];
  int64_t tuples = 1;  // index tuples per batch item
  for (size_t d = b; d + 1 < indices.shape.size(); ++d) tuples *= indices.shape[d];
  std::vector<int64_t> idx = indices.toInt64Vector();
  int64_t o = 0;
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t off = bi * perBatchData;
      for (int64_t k = 0; k < last; ++k) off += checkedIndex(ctx, idx[(bi * tuples + t) * last + k], data.shape[b + k]) * ds[b + k];
      if (slice > 0) std::memcpy(r.bytes.data() + o * es, data.bytes.data() + off * es, static_cast<size_t>(slice) * es);
      o += slice;
    }
  return r;
}

// ---- Scatter with reductions ----

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Reduction reductionOf(const NodeContext& ctx) {
  const std::string r = ctx.attrs.getString("reduction", "none");
  if (r == "none") return Reduction::kNone;
  if (r == "add") return Reduction::kAdd;
  if (r == "mul") return Reduction::kMul;
  if (r == "max") return Reduction::kMax;
  if (r == "min") return Reduction::kMin;
  attrError(ctx, "unknown reduction '" + r + "'");
}

void scatterOne(Tensor& out, int64_t dst, const Tensor& updates, int64_t src, Reduction red) {
  if (red == Reduction::kNone) {
    const size_t es = dataTypeSize(out.dtype);
    std::memcpy(out.bytes.data() + dst * es, updates.bytes.data() + src * es, es);
    return;
  }
  const double a = out.getDouble(dst), u = updates.getDouble(src);
  double v = a;
  switch (red) {
    case Reduction::kAdd: v = a + u; break;
    case Reduction::kMul: v = a * u; break;
    case Reduction::kMax: v = std::max(a, u); break;
    case Reduction::kMin: v = std::min(a, u); break;
    default: break;
  }
  setFromDouble(out, dst, v);
}

Tensor scatterND(const NodeContext& ctx, const Tensor& data, const Tensor& indices, const Tensor& updates) {
  if (updates.dtype != data.dtype) shapeError(ctx, "updates dtype differs from data");
  if (indices.shape.empty()) shapeError(ctx, "indices must be at least 1-D");
  const int64_t last = indices.shape.back();
  if (last > static_cast<int64_t>(data.shape.size())) shapeError(ctx, "indices last dim exceeds the data rank");
  Shape expect(indices.shape.begin(), indices.shape.end() - 1);
  expect.insert(expect.end(), data.shape.begin() + last, data.shape.end());
  if (updates.shape != expect) shapeError(ctx, "updates shape " + shapeToString(updates.shape) + ", expected " + shapeToString(expect));
  const Reduction red = reductionOf(ctx);
  Tensor r = data;
  Shape ds = stridesOf(data.shape);
  int64_t slice = 1;
  for (size_t d = last; d < data.shape.size(); ++d) slice *= data.shape[d];
  const int64_t tuples = shapeNumel(Shape(indices.shape.begin(), indices.shape.end() - 1));
  if (updates.numel() != tuples * slice) shapeError(ctx, "updates size does not match indices and data");
  std::vector<int64_t> idx = indices.toInt64Vector();
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = 0;
    for (int64_t k = 0; k < last; ++k) off += checkedIndex(ctx, idx[t * last + k], data.shape[k]) * ds[k];
    for (int64_t e = 0; e < slice; ++e) scatterOne(r, off + e, updates, t * slice + e, red);
  }
  return r;
}

Tensor scatterElements(const NodeContext& ctx, const Tensor& data, const Tensor& indices, const Tensor& updates) {
  if (updates.dtype != data.dtype) shapeError(ctx, "updates dtype differs from data");
  if (updates.shape != indices.shape) shapeError(ctx, "updates and indices shapes differ");
  const int64_t rank = static_cast<int64_t>(data.shape.size());
  if (static_cast<int64_t>(indices.shape.size()) != rank) shapeError(ctx, "indices must have the rank of data");
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", 0), rank);
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis && indices.shape[d] > data.shape[d]) shapeError(ctx, "indices exceed data on axis " + std::to_string(d));
  const Reduction red = reductionOf(ctx);
  Tensor r = data;
  Shape ds = stridesOf(data.shape);
  std::vector<int64_t> pos(static_cast<size_t>(rank), 0);
  for (int64_t i = 0; i < indices.numel(); ++i) {
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d)
      off += (d == axis ? checkedIndex(ctx, indices.getInt64(i), data.shape[axis]) : pos[d]) * ds[d];
    scatterOne(r, off, updates, i, red);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++pos[d] < indices.shape[d]) break;
      pos[d] = 0;
    }
  }
  return r;
}

// ---- OneHot ----

Tensor oneHot(const NodeContext& ctx, const Tensor& indices, const Tensor& depthT, const Tensor& values) {
  if (depthT.numel() != 1) shapeError(ctx, "depth must be a scalar");
  if (values.numel() != 2) shapeError(ctx, "values must hold [off, on]");
  const int64_t depth = static_cast<int64_t>(depthT.getDouble(0));
  if (depth <= 0) shapeError(ctx, "depth must be positive");
  const int64_t rank = static_cast<int64_t>(indices.shape.size()) + 1;
  int64_t axis = ctx.attrs.getInt("axis", -1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) attrError(ctx, "axis out of range");
  Shape out = indices.shape;
  out.insert(out.begin() + axis, depth);
  Tensor r(values.dtype, out);
  const size_t es = dataTypeSize(values.dtype);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= out[d];
  for (int64_t i = 0; i < r.numel(); ++i) std::memcpy(r.bytes.data() + i * es, values.bytes.data(), es);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      double v = indices.getDouble(o * inner + in);
      int64_t k = static_cast<int64_t>(v);
      if (k < 0) k += depth;
      if (k < 0 || k >= depth) continue;  // out of range: all "off"
      std::memcpy(r.bytes.data() + ((o * depth + k) * inner + in) * es, values.bytes.data() + es, es);
    }
  return r;
}

// ---- NonZero ----

Tensor nonZero(const Tensor& x) {
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  std::vector<int64_t> hits;
  for (int64_t i = 0; i < x.numel(); ++i)
    if (x.getDouble(i) != 0) hits.push_back(i);
  const int64_t n = static_cast<int64_t>(hits.size());
  Tensor r(DataType::kInt64, {rank, n});
  Shape st = stridesOf(x.shape);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t d = 0; d < rank; ++d) r.data<int64_t>()[d * n + j] = (hits[j] / st[d]) % x.shape[d];
  return r;
}

// ---- TopK ----

std::vector<Tensor> topK(const NodeContext& ctx, const Tensor& x, int64_t k) {
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", -1), rank);
  const bool largest = ctx.attrs.getInt("largest", 1) != 0;
  const int64_t n = x.shape[axis];
  if (k < 0 || k > n) shapeError(ctx, "k = " + std::to_string(k) + " out of range for an axis of size " + std::to_string(n));
  Shape out = x.shape;
  out[axis] = k;
  Tensor values(x.dtype, out), indices(DataType::kInt64, out);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[d];
  const size_t es = dataTypeSize(x.dtype);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      for (int64_t i = 0; i < n; ++i) v[i] = x.getDouble((o * n + i) * inner + in);
      std::iota(order.begin(), order.end(), 0);
      // Ties keep the lower index first; NaN counts as the largest value.
      auto before = [&](int64_t a, int64_t b) {
        const double va = v[a], vb = v[b];
        if (std::isnan(va) || std::isnan(vb)) return largest ? (std::isnan(va) && !std::isnan(vb)) : (!std::isnan(va) && std::isnan(vb));
        return largest ? va > vb : va < vb;
      };
      std::stable_sort(order.begin(), order.end(), before);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t dst = (o * k + j) * inner + in;
        std::memcpy(values.bytes.data() + dst * es, x.bytes.data() + ((o * n + order[j]) * inner + in) * es, es);
        indices.data<int64_t>()[dst] = order[j];
      }
    }
  return {values, indices};
}

// ---- CumSum ----

Tensor cumSum(const NodeContext& ctx, const Tensor& x, const Tensor& axisT) {
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t axis = normalizeAxis(ctx, axisT.getInt64(0), rank);
  const bool exclusive = ctx.attrs.getInt("exclusive", 0) != 0, reverse = ctx.attrs.getInt("reverse", 0) != 0;
  Tensor r(x.dtype, x.shape);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[d];
  const int64_t n = x.shape[axis];
  const bool integral = isIntType(x.dtype);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      double acc = 0;
      int64_t iacc = 0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = reverse ? n - 1 - j : j;
        const int64_t at = (o * n + i) * inner + in;
        if (exclusive) setFromDouble(r, at, integral ? static_cast<double>(iacc) : acc);
        if (integral) iacc += x.getInt64(at);
        else acc += x.getDouble(at);
        if (!exclusive) setFromDouble(r, at, integral ? static_cast<double>(iacc) : acc);
      }
    }
  return r;
}

// ---- Trilu ----

Tensor trilu(const NodeContext& ctx, const Tensor& x, int64_t k) {
  if (x.shape.size() < 2) shapeError(ctx, "input must be at least 2-D");
  const bool upper = ctx.attrs.getInt("upper", 1) != 0;
  Tensor r(x.dtype, x.shape);
  const int64_t rows = x.shape[x.shape.size() - 2], cols = x.shape.back();
  const size_t es = dataTypeSize(x.dtype);
  const int64_t mats = rows * cols == 0 ? 0 : x.numel() / (rows * cols);
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const bool keep = upper ? j - i >= k : j - i <= k;
        const int64_t at = (m * rows + i) * cols + j;
        if (keep) std::memcpy(r.bytes.data() + at * es, x.bytes.data() + at * es, es);
      }
  return r;
}

ValueInfo sameInfo(const ValueInfo& v) {
  ValueInfo r = v;
  r.constValue = nullptr;
  r.present = true;
  return r;
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{
    "GatherND",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 2);
      const ValueInfo& d = info(ctx, in, 0);
      const ValueInfo& i = info(ctx, in, 1);
      if (!d.hasShape || !i.hasShape) return std::vector<ValueInfo>{unknownRank(d.dtype)};
      if (!i.shape.empty() && i.shape.back() < 0) return std::vector<ValueInfo>{unknownRank(d.dtype)};
      return std::vector<ValueInfo>{makeInfo(d.dtype, gatherNDShape(ctx, d.shape, i.shape))};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<Tensor>{gatherND(ctx, input(ctx, in, 0), input(ctx, in, 1))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "ScatterND",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 3, 3);
      return sameAsInput0(ctx, in);
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 3, 3);
      return std::vector<Tensor>{scatterND(ctx, input(ctx, in, 0), input(ctx, in, 1), input(ctx, in, 2))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "ScatterElements",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 3, 3);
      return sameAsInput0(ctx, in);
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 3, 3);
      return std::vector<Tensor>{scatterElements(ctx, input(ctx, in, 0), input(ctx, in, 1), input(ctx, in, 2))};
    }});

// Scatter (opset 9-10) is ScatterElements without reductions.
PLANFORGE_REGISTER_OP(OpDef{
    "Scatter",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 3, 3);
      return sameAsInput0(ctx, in);
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 3, 3);
      return std::vector<Tensor>{scatterElements(ctx, input(ctx, in, 0), input(ctx, in, 1), input(ctx, in, 2))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "OneHot",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 3, 3);
      const ValueInfo& i = info(ctx, in, 0);
      const ValueInfo& d = info(ctx, in, 1);
      const DataType dt = info(ctx, in, 2).dtype;
      if (!i.hasShape) return std::vector<ValueInfo>{unknownRank(dt)};
      const int64_t rank = static_cast<int64_t>(i.shape.size()) + 1;
      int64_t axis = ctx.attrs.getInt("axis", -1);
      if (axis < 0) axis += rank;
      if (axis < 0 || axis >= rank) attrError(ctx, "axis out of range");
      Shape out = i.shape;
      out.insert(out.begin() + axis, d.constValue && d.constValue->numel() == 1 ? static_cast<int64_t>(d.constValue->getDouble(0)) : -1);
      return std::vector<ValueInfo>{makeInfo(dt, out)};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 3, 3);
      return std::vector<Tensor>{oneHot(ctx, input(ctx, in, 0), input(ctx, in, 1), input(ctx, in, 2))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "NonZero",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& x = info(ctx, in, 0);
      return std::vector<ValueInfo>{makeInfo(DataType::kInt64, {x.hasShape ? static_cast<int64_t>(x.shape.size()) : -1, -1})};
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{nonZero(input(ctx, in, 0))}; }});

PLANFORGE_REGISTER_OP(OpDef{
    "TopK",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& x = info(ctx, in, 0);
      if (!x.hasShape) return std::vector<ValueInfo>{unknownRank(x.dtype), unknownRank(DataType::kInt64)};
      const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", -1), static_cast<int64_t>(x.shape.size()));
      Shape out = x.shape;
      if (ctx.opset < 10) out[axis] = ctx.attrs.getInt("k", -1);
      else out[axis] = hasInfo(in, 1) && in[1].constValue ? in[1].constValue->getInt64(0) : -1;
      return std::vector<ValueInfo>{makeInfo(x.dtype, out), makeInfo(DataType::kInt64, out)};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      const int64_t k = ctx.opset < 10 ? ctx.attrs.getInt("k", -1) : input(ctx, in, 1).getInt64(0);
      return topK(ctx, input(ctx, in, 0), k);
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "CumSum",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<ValueInfo>{sameInfo(info(ctx, in, 0))};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<Tensor>{cumSum(ctx, input(ctx, in, 0), input(ctx, in, 1))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "Trilu", sameAsInput0,
    [](const NodeContext& ctx, const Inputs& in) {
      const int64_t k = hasInput(in, 1) ? in[1]->getInt64(0) : 0;
      return std::vector<Tensor>{trilu(ctx, input(ctx, in, 0), k)};
    }});

}  // namespace ops
}  // namespace planforge
