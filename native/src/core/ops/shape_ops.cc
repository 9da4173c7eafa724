// Ops that only change the shape view or describe it: Reshape, Flatten, Squeeze, Unsqueeze,
// Shape, Size, Identity, Dropout, Expand.
#include <algorithm>
#include <cstring>
#include <set>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

Tensor withShape(const Tensor& x, const Shape& s) {
  Tensor r;
  r.dtype = x.dtype;
  r.shape = s;
  r.bytes = x.bytes;
  return r;
}

// ---- Reshape ----

// Resolves 0 (copy, unless allowzero) and -1 (inferred) in the requested shape. Input dims may be
// -1 (unknown) in inference; the result then has -1 where it cannot be determined.
Shape resolveReshape(const NodeContext& ctx, const Shape& in, const std::vector<int64_t>& req, bool allowZero) {
  Shape out(req.size());
  int64_t inferAt = -1;
  bool inKnown = std::all_of(in.begin(), in.end(), [](int64_t d) { return d >= 0; });
  int64_t known = 1;
  bool outKnown = true;
  for (size_t i = 0; i < req.size(); ++i) {
    int64_t d = req[i];
    if (d == 0 && !allowZero) {
      if (i >= in.size()) shapeError(ctx, "shape has 0 at index " + std::to_string(i) + " beyond the input rank");
      d = in[i];
    } else if (d == -1) {
      if (inferAt >= 0) shapeError(ctx, "shape has more than one -1");
      inferAt = static_cast<int64_t>(i);
      continue;
    } else if (d < -1) {
      shapeError(ctx, "invalid shape value " + std::to_string(d));
    }
    out[i] = d;
    if (d < 0) outKnown = false;
    else known *= d;
  }
  const int64_t total = inKnown ? shapeNumel(in) : -1;
  if (inferAt >= 0 && !inKnown) {
    // Symbolic dims copied through 0 (e.g. [batch, 3, 4] -> [0, -1]) cancel out: the -1 is the
    // product of the other input dims over the product of the other output dims.
    int64_t inRest = 1, outRest = 1;
    bool ok = true;
    for (size_t i = 0; i < in.size() && ok; ++i) {
      const bool copied = i < req.size() && req[i] == 0 && !allowZero;
      if (copied) continue;
      if (in[i] < 0) ok = false;
      else inRest *= in[i];
    }
    for (size_t i = 0; i < req.size() && ok; ++i) {
      if (static_cast<int64_t>(i) == inferAt || (req[i] == 0 && !allowZero)) continue;
      if (out[i] < 0) ok = false;
      else outRest *= out[i];
    }
    out[inferAt] = ok && outRest > 0 && inRest % outRest == 0 ? inRest / outRest : -1;
  } else if (inferAt >= 0) {
    if (!outKnown) out[inferAt] = -1;
    else if (known == 0 || total % known != 0)
      shapeError(ctx, "cannot reshape " + shapeToString(in) + " to " + shapeToString(req));
    else out[inferAt] = total / known;
  } else if (inKnown && outKnown && known != total) {
    shapeError(ctx, "cannot reshape " + shapeToString(in) + " (" + std::to_string(total) + " elements) to " +
                        shapeToString(out));
  }
  return out;
}

std::vector<ValueInfo> inferReshape(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  const bool allowZero = ctx.attrs.getInt("allowzero", 0) != 0;
  std::vector<int64_t> req;
  if (hasInfo(in, 1)) {
    if (!in[1].constValue) {
      if (in[1].hasShape && in[1].shape.size() == 1 && in[1].shape[0] >= 0)
        return {makeInfo(x.dtype, Shape(static_cast<size_t>(in[1].shape[0]), -1))};
      return {unknownRank(x.dtype)};
    }
    req = in[1].constValue->toInt64Vector();
  } else {
    req = ctx.attrs.getInts("shape", {});
  }
  if (!x.hasShape) {
    Shape s(req.size(), -1);
    for (size_t i = 0; i < req.size(); ++i)
      if (req[i] > 0 || (req[i] == 0 && allowZero)) s[i] = req[i];
    return {makeInfo(x.dtype, s)};
  }
  return {makeInfo(x.dtype, resolveReshape(ctx, x.shape, req, allowZero))};
}

Tensor reshape(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0);
  std::vector<int64_t> req = hasInput(in, 1) ? in[1]->toInt64Vector() : ctx.attrs.getInts("shape", {});
  return withShape(x, resolveReshape(ctx, x.shape, req, ctx.attrs.getInt("allowzero", 0) != 0));
}

// ---- Flatten ----

Shape flattenShape(const NodeContext& ctx, const Shape& s) {
  const int64_t rank = static_cast<int64_t>(s.size());
  int64_t axis = ctx.attrs.getInt("axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) shapeError(ctx, "axis out of range for rank " + std::to_string(rank));
  int64_t a = 1, b = 1;
  for (int64_t i = 0; i < rank; ++i) {
    int64_t& p = i < axis ? a : b;
    if (s[i] < 0 || p < 0) p = -1;
    else p *= s[i];
  }
  return {a, b};
}

// ---- Squeeze / Unsqueeze ----

std::vector<int64_t> axesArg(const NodeContext& ctx, const Infos* infos, const Inputs* inputs, bool* known) {
  *known = true;
  if (infos && hasInfo(*infos, 1)) {
    if (!(*infos)[1].constValue) {
      *known = false;
      return {};
    }
    return (*infos)[1].constValue->toInt64Vector();
  }
  if (inputs && hasInput(*inputs, 1)) return (*inputs)[1]->toInt64Vector();
  return ctx.attrs.getInts("axes", {});
}

Shape squeezeShape(const NodeContext& ctx, const Shape& s, const std::vector<int64_t>& axes, bool runtime) {
  const int64_t rank = static_cast<int64_t>(s.size());
  std::set<int64_t> drop;
  if (axes.empty()) {
    for (int64_t i = 0; i < rank; ++i)
      if (s[i] == 1) drop.insert(i);
  } else {
    for (auto a : axes) {
      int64_t n = normalizeAxis(ctx, a, rank);
      if (s[n] >= 0 && s[n] != 1)
        shapeError(ctx, "cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(s[n]));
      drop.insert(n);
    }
  }
  (void)runtime;
  Shape out;
  for (int64_t i = 0; i < rank; ++i)
    if (!drop.count(i)) out.push_back(s[i]);
  return out;
}

Shape unsqueezeShape(const NodeContext& ctx, const Shape& s, const std::vector<int64_t>& axes) {
  const int64_t outRank = static_cast<int64_t>(s.size() + axes.size());
  std::vector<bool> isNew(static_cast<size_t>(outRank), false);
  for (auto a : axes) {
    int64_t n = normalizeAxis(ctx, a, outRank);
    if (isNew[n]) shapeError(ctx, "duplicate axis " + std::to_string(a));
    isNew[n] = true;
  }
  Shape out;
  size_t j = 0;
  for (int64_t i = 0; i < outRank; ++i) out.push_back(isNew[i] ? 1 : s[j++]);
  return out;
}

// ---- Shape ----

std::pair<int64_t, int64_t> shapeRange(const NodeContext& ctx, int64_t rank) {
  int64_t start = ctx.attrs.getInt("start", 0);
  int64_t end = ctx.attrs.has("end") ? ctx.attrs.getInt("end", rank) : rank;
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  return {start, std::max(start, end)};
}

// ---- Expand ----

Tensor expand(const NodeContext& ctx, const Tensor& x, const std::vector<int64_t>& shape) {
  for (auto d : shape)
    if (d < 0) shapeError(ctx, "negative dimension in shape " + shapeToString(shape));
  Shape out = broadcastShapes(ctx, x.shape, shape);
  Tensor r(x.dtype, out);
  const size_t es = dataTypeSize(x.dtype);
  std::vector<Shape> strides{broadcastStrides(x.shape, out)};
  const uint8_t* src = x.bytes.data();
  uint8_t* dst = r.bytes.data();
  forEachBroadcast(out, strides, [&](int64_t o, int64_t len, const std::vector<int64_t>& off, const std::vector<int64_t>& inner) {
    if (inner[0] == 1) {
      std::memcpy(dst + o * es, src + off[0] * es, static_cast<size_t>(len) * es);
    } else {
      for (int64_t i = 0; i < len; ++i) std::memcpy(dst + (o + i) * es, src + (off[0] + i * inner[0]) * es, es);
    }
  });
  return r;
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"Reshape", inferReshape, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{reshape(ctx, in)};
                            }});

PLANFORGE_REGISTER_OP(OpDef{
    "Flatten",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& x = info(ctx, in, 0);
      if (!x.hasShape) return std::vector<ValueInfo>{makeInfo(x.dtype, {-1, -1})};
      return std::vector<ValueInfo>{makeInfo(x.dtype, flattenShape(ctx, x.shape))};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      const Tensor& x = input(ctx, in, 0);
      return std::vector<Tensor>{withShape(x, flattenShape(ctx, x.shape))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "Squeeze",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& x = info(ctx, in, 0);
      bool known;
      std::vector<int64_t> axes = axesArg(ctx, &in, nullptr, &known);
      if (!x.hasShape || !known) return std::vector<ValueInfo>{unknownRank(x.dtype)};
      if (axes.empty() && std::any_of(x.shape.begin(), x.shape.end(), [](int64_t d) { return d < 0; }))
        return std::vector<ValueInfo>{unknownRank(x.dtype)};
      return std::vector<ValueInfo>{makeInfo(x.dtype, squeezeShape(ctx, x.shape, axes, false))};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      const Tensor& x = input(ctx, in, 0);
      bool known;
      std::vector<int64_t> axes = axesArg(ctx, nullptr, &in, &known);
      return std::vector<Tensor>{withShape(x, squeezeShape(ctx, x.shape, axes, true))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "Unsqueeze",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& x = info(ctx, in, 0);
      bool known;
      std::vector<int64_t> axes = axesArg(ctx, &in, nullptr, &known);
      if (!x.hasShape || !known) return std::vector<ValueInfo>{unknownRank(x.dtype)};
      return std::vector<ValueInfo>{makeInfo(x.dtype, unsqueezeShape(ctx, x.shape, axes))};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      const Tensor& x = input(ctx, in, 0);
      bool known;
      std::vector<int64_t> axes = axesArg(ctx, nullptr, &in, &known);
      if (axes.empty()) attrError(ctx, "axes are required");
      return std::vector<Tensor>{withShape(x, unsqueezeShape(ctx, x.shape, axes))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "Shape",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& x = info(ctx, in, 0);
      if (!x.hasShape) return std::vector<ValueInfo>{makeInfo(DataType::kInt64, {-1})};
      auto r = shapeRange(ctx, static_cast<int64_t>(x.shape.size()));
      return std::vector<ValueInfo>{makeInfo(DataType::kInt64, {r.second - r.first})};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      const Tensor& x = input(ctx, in, 0);
      auto r = shapeRange(ctx, static_cast<int64_t>(x.shape.size()));
      Tensor out(DataType::kInt64, {r.second - r.first});
      for (int64_t i = r.first; i < r.second; ++i) out.data<int64_t>()[i - r.first] = x.shape[i];
      return std::vector<Tensor>{std::move(out)};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "Size", [](const NodeContext&, const Infos&) { return std::vector<ValueInfo>{makeInfo(DataType::kInt64, {})}; },
    [](const NodeContext& ctx, const Inputs& in) {
      Tensor out(DataType::kInt64, {});
      out.data<int64_t>()[0] = input(ctx, in, 0).numel();
      return std::vector<Tensor>{std::move(out)};
    }});

PLANFORGE_REGISTER_OP(OpDef{"Identity", sameAsInput0, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{input(ctx, in, 0)};
                            }});

// Dropout is the identity at inference; the optional mask is all true.
PLANFORGE_REGISTER_OP(OpDef{
    "Dropout",
    [](const NodeContext& ctx, const Infos& in) {
      std::vector<ValueInfo> r = sameAsInput0(ctx, in);
      if (ctx.numOutputs > 1) {
        ValueInfo mask = r[0];
        mask.dtype = ctx.opset >= 10 ? DataType::kBool : in[0].dtype;
        r.push_back(mask);
      }
      return r;
    },
    [](const NodeContext& ctx, const Inputs& in) {
      const Tensor& x = input(ctx, in, 0);
      const bool training = hasInput(in, 2) ? in[2]->getInt64(0) != 0
                                            : (ctx.opset < 7 && ctx.attrs.getInt("is_test", 1) == 0);
      const float ratio = hasInput(in, 1) ? static_cast<float>(in[1]->getDouble(0)) : ctx.attrs.getFloat("ratio", 0.5f);
      if (training && ratio != 0.f) shapeError(ctx, "training-mode dropout is random and has no reference result");
      std::vector<Tensor> r{x};
      if (ctx.numOutputs > 1) {
        Tensor mask(ctx.opset >= 10 ? DataType::kBool : x.dtype, x.shape);
        for (int64_t i = 0; i < mask.numel(); ++i) setFromDouble(mask, i, 1.0);
        r.push_back(std::move(mask));
      }
      return r;
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "Expand",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 2);
      const ValueInfo& x = info(ctx, in, 0);
      const ValueInfo& s = info(ctx, in, 1);
      if (!s.constValue || !x.hasShape) {
        if (s.hasShape && s.shape.size() == 1 && s.shape[0] >= 0 && x.hasShape) {
          const size_t r = std::max(x.shape.size(), static_cast<size_t>(s.shape[0]));
          return std::vector<ValueInfo>{makeInfo(x.dtype, Shape(r, -1))};
        }
        return std::vector<ValueInfo>{unknownRank(x.dtype)};
      }
      return std::vector<ValueInfo>{makeInfo(x.dtype, broadcastShapes(ctx, x.shape, s.constValue->toInt64Vector()))};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<Tensor>{expand(ctx, input(ctx, in, 0), input(ctx, in, 1).toInt64Vector())};
    }});

}  // namespace ops
}  // namespace planforge
