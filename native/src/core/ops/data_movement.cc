// Ops that move elements without arithmetic (dtype-agnostic, on raw bytes): Transpose, Slice,
// Concat, Split, Gather, GatherElements, Tile, DepthToSpace, SpaceToDepth.
#include <algorithm>
#include <cstring>

#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

// ---- Transpose ----

std::vector<int64_t> permOf(const NodeContext& ctx, size_t rank) {
  std::vector<int64_t> perm = ctx.attrs.getInts("perm", {});
  if (perm.empty()) {
    for (size_t i = 0; i < rank; ++i) perm.push_back(static_cast<int64_t>(rank - 1 - i));
    return perm;
  }
  if (perm.size() != rank) shapeError(ctx, "perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(rank));
  std::vector<bool> seen(rank, false);
  for (auto& p : perm) {
    p = normalizeAxis(ctx, p, static_cast<int64_t>(rank));
    if (seen[p]) attrError(ctx, "perm is not a permutation");
    seen[p] = true;
  }
  return perm;
}

template <size_t ES>
void transposeCopy(const uint8_t* src, uint8_t* dst, const Shape& outShape, const Shape& srcStrides) {
  // Walk the output in order; srcStrides[d] is the input stride of output dim d.
  std::vector<Shape> strides{srcStrides};
  forEachBroadcast(outShape, strides, [&](int64_t o, int64_t len, const std::vector<int64_t>& off, const std::vector<int64_t>& inner) {
    const uint8_t* s = src + off[0] * ES;
    uint8_t* d = dst + o * ES;
    if (inner[0] == 1) {
      std::memcpy(d, s, static_cast<size_t>(len) * ES);
    } else {
      for (int64_t i = 0; i < len; ++i) std::memcpy(d + i * ES, s + i * inner[0] * ES, ES);
    }
  });
}

Tensor transpose(const Tensor& x, const std::vector<int64_t>& perm) {
  Shape outShape(perm.size());
  Shape inStrides = stridesOf(x.shape);
  Shape srcStrides(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    outShape[i] = x.shape[perm[i]];
    srcStrides[i] = inStrides[perm[i]];
  }
  Tensor r(x.dtype, outShape);
  switch (dataTypeSize(x.dtype)) {
    case 1: transposeCopy<1>(x.bytes.data(), r.bytes.data(), outShape, srcStrides); break;
    case 2: transposeCopy<2>(x.bytes.data(), r.bytes.data(), outShape, srcStrides); break;
    case 4: transposeCopy<4>(x.bytes.data(), r.bytes.data(), outShape, srcStrides); break;
    default: transposeCopy<8>(x.bytes.data(), r.bytes.data(), outShape, srcStrides); break;
  }
  return r;
}

// ---- Slice ----

struct SliceSpec {
  Shape starts, steps, out;  // per input dim
};

// Slice parameters per input dim; `dims` may hold -1 (unknown) in inference, in which case the
// output dim is -1 unless the axis is not sliced.
SliceSpec sliceSpec(const NodeContext& ctx, const Shape& dims, const std::vector<int64_t>& starts,
                    const std::vector<int64_t>& ends, std::vector<int64_t> axes, std::vector<int64_t> steps) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  if (starts.size() != ends.size()) shapeError(ctx, "starts and ends differ in length");
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size()) shapeError(ctx, "axes/steps do not match starts");
  SliceSpec s;
  s.starts.assign(static_cast<size_t>(rank), 0);
  s.steps.assign(static_cast<size_t>(rank), 1);
  s.out = dims;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = normalizeAxis(ctx, axes[i], rank);
    if (seen[a]) shapeError(ctx, "axis repeated in Slice");
    seen[a] = true;
    const int64_t step = steps[i];
    if (step == 0) shapeError(ctx, "step must not be 0");
    const int64_t d = dims[a];
    s.steps[a] = step;
    if (d < 0) {
      s.out[a] = -1;
      continue;
    }
    int64_t st = starts[i], en = ends[i];
    if (st < 0) st += d;
    if (en < 0) en += d;
    if (step > 0) {
      st = std::clamp<int64_t>(st, 0, d);
      en = std::clamp<int64_t>(en, 0, d);
      s.out[a] = en > st ? (en - st + step - 1) / step : 0;
    } else {
      st = std::clamp<int64_t>(st, 0, d - 1);
      en = std::clamp<int64_t>(en, -1, d - 1);
      s.out[a] = st > en ? (st - en + (-step) - 1) / (-step) : 0;
    }
    s.starts[a] = st;
  }
  return s;
}

struct SliceArgs {
  std::vector<int64_t> starts, ends, axes, steps;
  bool known = true;
};

SliceArgs sliceArgs(const NodeContext& ctx, const std::vector<const Tensor*>& vals, size_t count) {
  SliceArgs a;
  if (ctx.opset < 10) {
    a.starts = ctx.attrs.getInts("starts", {});
    a.ends = ctx.attrs.getInts("ends", {});
    a.axes = ctx.attrs.getInts("axes", {});
    return a;
  }
  if (count < 3 || !vals[1] || !vals[2]) {
    a.known = false;
    return a;
  }
  a.starts = vals[1]->toInt64Vector();
  a.ends = vals[2]->toInt64Vector();
  if (count > 3 && vals[3]) a.axes = vals[3]->toInt64Vector();
  if (count > 4 && vals[4]) a.steps = vals[4]->toInt64Vector();
  return a;
}

Tensor slice(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0);
  if (ctx.opset >= 10) {
    input(ctx, in, 1);
    input(ctx, in, 2);
  }
  SliceArgs args = sliceArgs(ctx, in, in.size());
  SliceSpec s = sliceSpec(ctx, x.shape, args.starts, args.ends, args.axes, args.steps);
  Tensor r(x.dtype, s.out);
  const size_t es = dataTypeSize(x.dtype);
  Shape inStrides = stridesOf(x.shape);
  Shape stepStrides(x.shape.size());
  int64_t base = 0;
  for (size_t i = 0; i < x.shape.size(); ++i) {
    stepStrides[i] = inStrides[i] * s.steps[i];
    base += s.starts[i] * inStrides[i];
  }
  const uint8_t* src = x.bytes.data() + base * es;
  uint8_t* dst = r.bytes.data();
  forEachBroadcast(s.out, {stepStrides}, [&](int64_t o, int64_t len, const std::vector<int64_t>& off, const std::vector<int64_t>& inner) {
    if (inner[0] == 1) std::memcpy(dst + o * es, src + off[0] * es, static_cast<size_t>(len) * es);
    else
      for (int64_t i = 0; i < len; ++i) std::memcpy(dst + (o + i) * es, src + (off[0] + i * inner[0]) * es, es);
  });
  return r;
}

std::vector<ValueInfo> inferSlice(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  if (!x.hasShape) return {unknownRank(x.dtype)};
  std::vector<const Tensor*> vals;
  for (size_t i = 0; i < in.size(); ++i) vals.push_back(in[i].present ? in[i].constValue : nullptr);
  // An omitted axes/steps input is fine; a present non-constant one is not known.
  for (size_t i = 3; i < in.size(); ++i)
    if (in[i].present && !in[i].constValue && ctx.opset >= 10) return {makeInfo(x.dtype, Shape(x.shape.size(), -1))};
  SliceArgs args = sliceArgs(ctx, vals, vals.size());
  if (!args.known) return {makeInfo(x.dtype, Shape(x.shape.size(), -1))};
  return {makeInfo(x.dtype, sliceSpec(ctx, x.shape, args.starts, args.ends, args.axes, args.steps).out)};
}

// ---- Concat ----

int64_t concatAxis(const NodeContext& ctx, int64_t rank) {
  if (!ctx.attrs.has("axis") && ctx.opset >= 4) attrError(ctx, "axis is required");
  return normalizeAxis(ctx, ctx.attrs.getInt("axis", 1), rank);
}

std::vector<ValueInfo> inferConcat(const NodeContext& ctx, const Infos& in) {
  if (in.empty()) shapeError(ctx, "expects at least one input");
  const ValueInfo& first = info(ctx, in, 0);
  Shape out;
  bool haveRank = false;
  for (size_t i = 0; i < in.size(); ++i) {
    const ValueInfo& v = info(ctx, in, i);
    if (v.dtype != first.dtype) shapeError(ctx, "inputs have different dtypes");
    if (v.hasShape) {
      out = v.shape;
      haveRank = true;
      break;
    }
  }
  if (!haveRank) return {unknownRank(first.dtype)};
  const int64_t rank = static_cast<int64_t>(out.size());
  const int64_t axis = concatAxis(ctx, rank);
  int64_t total = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const ValueInfo& v = in[i];
    if (!v.hasShape) {
      total = -1;
      continue;
    }
    if (static_cast<int64_t>(v.shape.size()) != rank) shapeError(ctx, "inputs have different ranks");
    for (int64_t d = 0; d < rank; ++d) {
      if (d == axis) continue;
      if (out[d] < 0) out[d] = v.shape[d];
      else if (v.shape[d] >= 0 && v.shape[d] != out[d])
        shapeError(ctx, "input " + std::to_string(i) + " shape " + shapeToString(v.shape) + " does not match on dim " + std::to_string(d));
    }
    if (total >= 0) total = v.shape[axis] < 0 ? -1 : total + v.shape[axis];
  }
  out[axis] = total;
  return {makeInfo(first.dtype, out)};
}

Tensor concat(const NodeContext& ctx, const Inputs& in) {
  if (in.empty()) shapeError(ctx, "expects at least one input");
  const Tensor& first = input(ctx, in, 0);
  const int64_t rank = static_cast<int64_t>(first.shape.size());
  const int64_t axis = concatAxis(ctx, rank);
  Shape out = first.shape;
  out[axis] = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const Tensor& t = input(ctx, in, i);
    if (t.dtype != first.dtype) shapeError(ctx, "inputs have different dtypes");
    if (static_cast<int64_t>(t.shape.size()) != rank) shapeError(ctx, "inputs have different ranks");
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis && t.shape[d] != first.shape[d])
        shapeError(ctx, "input shapes " + shapeToString(first.shape) + " and " + shapeToString(t.shape) + " do not match");
    out[axis] += t.shape[axis];
  }
  Tensor r(first.dtype, out);
  const size_t es = dataTypeSize(first.dtype);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= out[d];
  const int64_t rowOut = out[axis] * inner;
  int64_t offset = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const Tensor& t = *in[i];
    const int64_t row = t.shape[axis] * inner;
    if (row > 0)
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(r.bytes.data() + (o * rowOut + offset) * es, t.bytes.data() + o * row * es, static_cast<size_t>(row) * es);
    offset += row;
  }
  return r;
}

// ---- Split ----

// Sizes along the axis: from the split input (opset >= 13) / attribute, num_outputs (opset 18),
// or an equal split into the node's outputs.
std::vector<int64_t> splitSizes(const NodeContext& ctx, int64_t dim, const Tensor* splitInput, bool splitUnknown) {
  std::vector<int64_t> sizes;
  if (splitInput) sizes = splitInput->toInt64Vector();
  else if (!splitUnknown) sizes = ctx.attrs.getInts("split", {});
  if (splitUnknown) return std::vector<int64_t>(static_cast<size_t>(std::max(ctx.numOutputs, 1)), -1);
  if (!sizes.empty()) {
    if (dim >= 0) {
      int64_t sum = 0;
      for (auto s : sizes) {
        if (s < 0) shapeError(ctx, "negative split size");
        sum += s;
      }
      if (sum != dim) shapeError(ctx, "split sizes sum to " + std::to_string(sum) + ", axis has " + std::to_string(dim));
    }
    return sizes;
  }
  int64_t n = ctx.attrs.getInt("num_outputs", 0);
  const bool fromAttr = n > 0;
  if (!fromAttr) n = ctx.numOutputs;
  if (n <= 0) shapeError(ctx, "cannot tell how many outputs to split into");
  if (dim < 0) return std::vector<int64_t>(static_cast<size_t>(n), -1);
  if (!fromAttr && dim % n != 0)
    shapeError(ctx, "axis of size " + std::to_string(dim) + " does not split evenly into " + std::to_string(n));
  const int64_t chunk = (dim + n - 1) / n;  // num_outputs: all chunks ceil(dim/n), the last smaller
  for (int64_t i = 0; i < n; ++i) sizes.push_back(std::max<int64_t>(0, std::min(chunk, dim - i * chunk)));
  return sizes;
}

std::vector<ValueInfo> inferSplit(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  const bool splitUnknown = hasInfo(in, 1) && !in[1].constValue;
  if (!x.hasShape) {
    int n = std::max(ctx.numOutputs, 1);
    return std::vector<ValueInfo>(static_cast<size_t>(n), unknownRank(x.dtype));
  }
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", 0), static_cast<int64_t>(x.shape.size()));
  std::vector<int64_t> sizes = splitSizes(ctx, x.shape[axis], hasInfo(in, 1) ? in[1].constValue : nullptr, splitUnknown);
  std::vector<ValueInfo> r;
  for (auto s : sizes) {
    Shape sh = x.shape;
    sh[axis] = s;
    r.push_back(makeInfo(x.dtype, sh));
  }
  return r;
}

std::vector<Tensor> split(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0);
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", 0), rank);
  std::vector<int64_t> sizes = splitSizes(ctx, x.shape[axis], hasInput(in, 1) ? in[1] : nullptr, false);
  const size_t es = dataTypeSize(x.dtype);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[d];
  const int64_t rowIn = x.shape[axis] * inner;
  std::vector<Tensor> outs;
  int64_t offset = 0;
  for (auto s : sizes) {
    Shape sh = x.shape;
    sh[axis] = s;
    Tensor t(x.dtype, sh);
    const int64_t row = s * inner;
    if (row > 0)
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(t.bytes.data() + o * row * es, x.bytes.data() + (o * rowIn + offset) * es, static_cast<size_t>(row) * es);
    offset += row;
    outs.push_back(std::move(t));
  }
  return outs;
}

// ---- Gather / GatherElements ----

Tensor gather(const NodeContext& ctx, const Tensor& data, const Tensor& indices) {
  if (!isIntType(indices.dtype)) shapeError(ctx, "indices must be integers");
  const int64_t rank = static_cast<int64_t>(data.shape.size());
  if (rank == 0) shapeError(ctx, "data must be at least 1-D");
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", 0), rank);
  Shape out(data.shape.begin(), data.shape.begin() + axis);
  out.insert(out.end(), indices.shape.begin(), indices.shape.end());
  out.insert(out.end(), data.shape.begin() + axis + 1, data.shape.end());
  Tensor r(data.dtype, out);
  const size_t es = dataTypeSize(data.dtype);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= data.shape[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= data.shape[d];
  const int64_t n = data.shape[axis];
  const int64_t ni = indices.numel();
  std::vector<int64_t> idx = indices.toInt64Vector();
  for (auto& i : idx) {
    if (i < -n || i >= n) shapeError(ctx, "index " + std::to_string(i) + " out of range for axis of size " + std::to_string(n));
    if (i < 0) i += n;
  }
  const size_t block = static_cast<size_t>(inner) * es;
  if (block == 0) return r;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < ni; ++j)
      std::memcpy(r.bytes.data() + (o * ni + j) * block, data.bytes.data() + (o * n + idx[j]) * block, block);
  return r;
}

Tensor gatherElements(const NodeContext& ctx, const Tensor& data, const Tensor& indices) {
  const int64_t rank = static_cast<int64_t>(data.shape.size());
  if (static_cast<int64_t>(indices.shape.size()) != rank) shapeError(ctx, "indices must have the rank of data");
  const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", 0), rank);
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis && indices.shape[d] > data.shape[d])
      shapeError(ctx, "indices " + shapeToString(indices.shape) + " exceed data " + shapeToString(data.shape) + " on axis " + std::to_string(d));
  Tensor r(data.dtype, indices.shape);
  const size_t es = dataTypeSize(data.dtype);
  Shape ds = stridesOf(data.shape);
  std::vector<int64_t> pos(static_cast<size_t>(rank), 0);
  const int64_t n = indices.numel();
  for (int64_t i = 0; i < n; ++i) {
    int64_t k = indices.getInt64(i);
    const int64_t dim = data.shape[axis];
    if (k < -dim || k >= dim) shapeError(ctx, "index " + std::to_string(k) + " out of range");
    if (k < 0) k += dim;
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d) off += (d == axis ? k : pos[d]) * ds[d];
    std::memcpy(r.bytes.data() + i * es, data.bytes.data() + off * es, es);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++pos[d] < indices.shape[d]) break;
      pos[d] = 0;
    }
  }
  return r;
}

// ---- Tile ----

Tensor tile(const NodeContext& ctx, const Tensor& x, const std::vector<int64_t>& repeats) {
  if (repeats.size() != x.shape.size())
    shapeError(ctx, "repeats has " + std::to_string(repeats.size()) + " values for rank " + std::to_string(x.shape.size()));
  Shape out(x.shape.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if (repeats[i] < 0) shapeError(ctx, "negative repeat");
    out[i] = x.shape[i] * repeats[i];
  }
  Tensor r(x.dtype, out);
  const size_t es = dataTypeSize(x.dtype);
  Shape is = stridesOf(x.shape);
  const int64_t n = r.numel();
  const int64_t rank = static_cast<int64_t>(out.size());
  std::vector<int64_t> pos(static_cast<size_t>(rank), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d) off += (pos[d] % x.shape[d]) * is[d];
    std::memcpy(r.bytes.data() + i * es, x.bytes.data() + off * es, es);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++pos[d] < out[d]) break;
      pos[d] = 0;
    }
  }
  return r;
}

// ---- DepthToSpace / SpaceToDepth ----

Tensor depthToSpace(const NodeContext& ctx, const Tensor& x) {
  if (x.shape.size() != 4) shapeError(ctx, "input must be 4-D");
  const int64_t b = ctx.attrs.getInt("blocksize", 0);
  if (b <= 0) attrError(ctx, "blocksize must be positive");
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  if (C % (b * b) != 0) shapeError(ctx, "channels not divisible by blocksize^2");
  const bool crd = ctx.attrs.getString("mode", "DCR") == "CRD";
  const int64_t Co = C / (b * b);
  Tensor tmp = x;
  // DCR: [N, b, b, Co, H, W] -> [N, Co, H, b, W, b]; CRD: [N, Co, b, b, H, W] -> same.
  tmp.shape = crd ? Shape{N, Co, b, b, H, W} : Shape{N, b, b, Co, H, W};
  Tensor t = transpose(tmp, crd ? std::vector<int64_t>{0, 1, 4, 2, 5, 3} : std::vector<int64_t>{0, 3, 4, 1, 5, 2});
  t.shape = {N, Co, H * b, W * b};
  return t;
}

Tensor spaceToDepth(const NodeContext& ctx, const Tensor& x) {
  if (x.shape.size() != 4) shapeError(ctx, "input must be 4-D");
  const int64_t b = ctx.attrs.getInt("blocksize", 0);
  if (b <= 0) attrError(ctx, "blocksize must be positive");
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  if (H % b != 0 || W % b != 0) shapeError(ctx, "spatial dims not divisible by blocksize");
  Tensor tmp = x;
  tmp.shape = {N, C, H / b, b, W / b, b};
  Tensor t = transpose(tmp, {0, 3, 5, 1, 2, 4});
  t.shape = {N, C * b * b, H / b, W / b};
  return t;
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{
    "Transpose",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& x = info(ctx, in, 0);
      if (!x.hasShape) return std::vector<ValueInfo>{unknownRank(x.dtype)};
      std::vector<int64_t> perm = permOf(ctx, x.shape.size());
      Shape out;
      for (auto p : perm) out.push_back(x.shape[p]);
      return std::vector<ValueInfo>{makeInfo(x.dtype, out)};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      const Tensor& x = input(ctx, in, 0);
      return std::vector<Tensor>{transpose(x, permOf(ctx, x.shape.size()))};
    }});

PLANFORGE_REGISTER_OP(OpDef{"Slice", inferSlice, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{slice(ctx, in)};
                            }});
PLANFORGE_REGISTER_OP(OpDef{"Concat", inferConcat, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{concat(ctx, in)};
                            }});
PLANFORGE_REGISTER_OP(OpDef{"Split", inferSplit, split});

PLANFORGE_REGISTER_OP(OpDef{
    "Gather",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 2);
      const ValueInfo& d = info(ctx, in, 0);
      const ValueInfo& i = info(ctx, in, 1);
      if (!d.hasShape || !i.hasShape) return std::vector<ValueInfo>{unknownRank(d.dtype)};
      const int64_t axis = normalizeAxis(ctx, ctx.attrs.getInt("axis", 0), static_cast<int64_t>(d.shape.size()));
      Shape out(d.shape.begin(), d.shape.begin() + axis);
      out.insert(out.end(), i.shape.begin(), i.shape.end());
      out.insert(out.end(), d.shape.begin() + axis + 1, d.shape.end());
      return std::vector<ValueInfo>{makeInfo(d.dtype, out)};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<Tensor>{gather(ctx, input(ctx, in, 0), input(ctx, in, 1))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "GatherElements",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 2);
      const ValueInfo& i = info(ctx, in, 1);
      ValueInfo v = i.hasShape ? makeInfo(in[0].dtype, i.shape) : unknownRank(in[0].dtype);
      return std::vector<ValueInfo>{v};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<Tensor>{gatherElements(ctx, input(ctx, in, 0), input(ctx, in, 1))};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "Tile",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 2, 2);
      const ValueInfo& x = info(ctx, in, 0);
      const ValueInfo& r = info(ctx, in, 1);
      if (!x.hasShape) return std::vector<ValueInfo>{unknownRank(x.dtype)};
      if (!r.constValue) return std::vector<ValueInfo>{makeInfo(x.dtype, Shape(x.shape.size(), -1))};
      std::vector<int64_t> reps = r.constValue->toInt64Vector();
      if (reps.size() != x.shape.size()) shapeError(ctx, "repeats length does not match the rank");
      Shape out = x.shape;
      for (size_t i = 0; i < out.size(); ++i) out[i] = out[i] < 0 ? -1 : out[i] * reps[i];
      return std::vector<ValueInfo>{makeInfo(x.dtype, out)};
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 2, 2);
      return std::vector<Tensor>{tile(ctx, input(ctx, in, 0), input(ctx, in, 1).toInt64Vector())};
    }});

PLANFORGE_REGISTER_OP(OpDef{
    "DepthToSpace",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& x = info(ctx, in, 0);
      const int64_t b = ctx.attrs.getInt("blocksize", 0);
      if (b <= 0) attrError(ctx, "blocksize must be positive");
      if (!x.hasShape || x.shape.size() != 4) return std::vector<ValueInfo>{unknownRank(x.dtype)};
      auto mul = [](int64_t d, int64_t k) { return d < 0 ? -1 : d * k; };
      return std::vector<ValueInfo>{makeInfo(
          x.dtype, {x.shape[0], x.shape[1] < 0 ? -1 : x.shape[1] / (b * b), mul(x.shape[2], b), mul(x.shape[3], b)})};
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{depthToSpace(ctx, input(ctx, in, 0))}; }});

PLANFORGE_REGISTER_OP(OpDef{
    "SpaceToDepth",
    [](const NodeContext& ctx, const Infos& in) {
      const ValueInfo& x = info(ctx, in, 0);
      const int64_t b = ctx.attrs.getInt("blocksize", 0);
      if (b <= 0) attrError(ctx, "blocksize must be positive");
      if (!x.hasShape || x.shape.size() != 4) return std::vector<ValueInfo>{unknownRank(x.dtype)};
      auto div = [](int64_t d, int64_t k) { return d < 0 ? -1 : d / k; };
      return std::vector<ValueInfo>{makeInfo(
          x.dtype, {x.shape[0], x.shape[1] < 0 ? -1 : x.shape[1] * b * b, div(x.shape[2], b), div(x.shape[3], b)})};
    },
    [](const NodeContext& ctx, const Inputs& in) { return std::vector<Tensor>{spaceToDepth(ctx, input(ctx, in, 0))}; }});

}  // namespace ops
}  // namespace planforge
