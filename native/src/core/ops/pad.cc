// Pad: constant / reflect / edge / wrap modes; pads from the attribute (opset < 11) or the
// `pads` input (+ optional constant_value and axes inputs). Negative pads crop.
#include <cstring>

#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

struct PadArgs {
  std::vector<int64_t> begin, end;  // per input dim
  bool known = true;
};

PadArgs padArgs(const NodeContext& ctx, int64_t rank, const Tensor* padsInput, const Tensor* axesInput, bool fromInput) {
  PadArgs a;
  std::vector<int64_t> pads = fromInput ? (padsInput ? padsInput->toInt64Vector() : std::vector<int64_t>{})
                                        : ctx.attrs.getInts(ctx.attrs.has("pads") ? "pads" : "paddings", {});
  std::vector<int64_t> axes;
  if (axesInput) {
    axes = axesInput->toInt64Vector();
  } else {
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  if (pads.size() != 2 * axes.size())
    shapeError(ctx, "pads has " + std::to_string(pads.size()) + " values, expected " + std::to_string(2 * axes.size()));
  a.begin.assign(static_cast<size_t>(rank), 0);
  a.end.assign(static_cast<size_t>(rank), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t ax = normalizeAxis(ctx, axes[i], rank);
    a.begin[ax] = pads[i];
    a.end[ax] = pads[i + axes.size()];
  }
  return a;
}

Shape paddedShape(const NodeContext& ctx, const Shape& s, const PadArgs& a) {
  Shape out(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    out[i] = s[i] < 0 ? -1 : s[i] + a.begin[i] + a.end[i];
    if (s[i] >= 0 && out[i] < 0) shapeError(ctx, "pads crop more than the input has");
  }
  return out;
}

Tensor pad(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0);
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const bool fromInput = ctx.opset >= 11;
  if (fromInput) input(ctx, in, 1);
  PadArgs a = padArgs(ctx, rank, fromInput ? in[1] : nullptr, hasInput(in, 3) ? in[3] : nullptr, fromInput);
  const std::string mode = ctx.attrs.getString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap") attrError(ctx, "unknown mode '" + mode + "'");
  Shape out = paddedShape(ctx, x.shape, a);
  Tensor r(x.dtype, out);
  const size_t es = dataTypeSize(x.dtype);
  // The fill value as one element of x's dtype.
  Tensor fill(x.dtype, {1});
  if (fromInput) {
    if (hasInput(in, 2) && in[2]->numel() > 0) {
      if (in[2]->dtype != x.dtype) shapeError(ctx, "constant_value dtype differs from data");
      std::memcpy(fill.bytes.data(), in[2]->bytes.data(), es);
    }
  } else {
    setFromDouble(fill, 0, ctx.attrs.getFloat("value", 0.f));
  }
  if (mode != "constant")
    for (int64_t d = 0; d < rank; ++d) {
      if (x.shape[d] == 0 && out[d] > 0) shapeError(ctx, mode + " padding of an empty axis");
      if (mode == "reflect" && (a.begin[d] >= x.shape[d] || a.end[d] >= x.shape[d]) && (a.begin[d] > 0 || a.end[d] > 0) &&
          x.shape[d] == 1)
        shapeError(ctx, "reflect padding needs at least 2 elements on a padded axis");
    }
  Shape is = stridesOf(x.shape);
  const int64_t n = r.numel();
  std::vector<int64_t> pos(static_cast<size_t>(rank), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    bool inside = true;
    for (int64_t d = 0; d < rank && inside; ++d) {
      int64_t p = pos[d] - a.begin[d];
      const int64_t dim = x.shape[d];
      if (p < 0 || p >= dim) {
        if (mode == "constant") {
          inside = false;
          break;
        } else if (mode == "edge") {
          p = p < 0 ? 0 : dim - 1;
        } else if (mode == "wrap") {
          p = ((p % dim) + dim) % dim;
        } else {  // reflect without repeating the edge: period 2*(dim-1)
          const int64_t period = 2 * (dim - 1);
          p = ((p % period) + period) % period;
          if (p >= dim) p = period - p;
        }
      }
      off += p * is[d];
    }
    std::memcpy(r.bytes.data() + i * es, inside ? x.bytes.data() + off * es : fill.bytes.data(), es);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++pos[d] < out[d]) break;
      pos[d] = 0;
    }
  }
  return r;
}

std::vector<ValueInfo> inferPad(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  if (!x.hasShape) return {unknownRank(x.dtype)};
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const bool fromInput = ctx.opset >= 11;
  if (fromInput && (!hasInfo(in, 1) || !in[1].constValue || (hasInfo(in, 3) && !in[3].constValue)))
    return {makeInfo(x.dtype, Shape(x.shape.size(), -1))};
  PadArgs a = padArgs(ctx, rank, fromInput ? in[1].constValue : nullptr, hasInfo(in, 3) ? in[3].constValue : nullptr,
                      fromInput);
  return {makeInfo(x.dtype, paddedShape(ctx, x.shape, a))};
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"Pad", inferPad, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{pad(ctx, in)};
                            }});

}  // namespace ops
}  // namespace planforge
