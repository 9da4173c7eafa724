// Resize (opset 10-19: nearest with its rounding modes, linear, cubic; every
// coordinate_transformation_mode; scales or sizes; axes and keep_aspect_ratio_policy) and the
// legacy Upsample. Interpolation is separable, so it is applied one axis at a time.
#include <algorithm>
#include <cmath>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

struct Tap {
  int64_t index;
  float weight;
};

struct ResizePlan {
  Shape outShape;
  std::vector<float> scales;  // per axis, as used by the coordinate transform
};

// Output shape and per-axis scales from scales / sizes (+ axes, keep_aspect_ratio_policy).
ResizePlan resizePlan(const NodeContext& ctx, const Shape& in, const std::vector<float>& scalesIn,
                      const std::vector<int64_t>& sizesIn) {
  const int64_t rank = static_cast<int64_t>(in.size());
  std::vector<int64_t> axes = ctx.attrs.getInts("axes", {});
  if (axes.empty())
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  for (auto& a : axes) a = normalizeAxis(ctx, a, rank);
  ResizePlan p;
  p.outShape = in;
  p.scales.assign(static_cast<size_t>(rank), 1.f);
  if (!scalesIn.empty()) {
    if (scalesIn.size() != axes.size())
      shapeError(ctx, "scales has " + std::to_string(scalesIn.size()) + " values, expected " + std::to_string(axes.size()));
    for (size_t i = 0; i < axes.size(); ++i) {
      if (!(scalesIn[i] > 0) || !std::isfinite(scalesIn[i])) shapeError(ctx, "scales must be positive and finite");
      if (in[axes[i]] > 0 && static_cast<double>(in[axes[i]]) * scalesIn[i] > 9e15) shapeError(ctx, "scales make an absurdly large output");
      p.scales[axes[i]] = scalesIn[i];
      p.outShape[axes[i]] = in[axes[i]] < 0 ? -1 : static_cast<int64_t>(std::floor(in[axes[i]] * static_cast<double>(scalesIn[i])));
    }
    return p;
  }
  if (sizesIn.size() != axes.size())
    shapeError(ctx, "sizes has " + std::to_string(sizesIn.size()) + " values, expected " + std::to_string(axes.size()));
  const std::string policy = ctx.attrs.getString("keep_aspect_ratio_policy", "stretch");
  for (auto d : sizesIn)
    if (d < 0) shapeError(ctx, "sizes must be non-negative");
  if (policy == "stretch") {
    for (size_t i = 0; i < axes.size(); ++i) {
      p.outShape[axes[i]] = sizesIn[i];
      p.scales[axes[i]] = in[axes[i]] > 0 ? static_cast<float>(sizesIn[i]) / static_cast<float>(in[axes[i]]) : 1.f;
    }
    return p;
  }
  if (policy != "not_larger" && policy != "not_smaller") attrError(ctx, "unknown keep_aspect_ratio_policy '" + policy + "'");
  for (auto a : axes)
    if (in[a] < 0) {  // inference with unknown dims: the common scale is unknown too
      for (auto b : axes) p.outShape[b] = -1;
      return p;
    }
  float scale = policy == "not_larger" ? 1e30f : 0.f;
  for (size_t i = 0; i < axes.size(); ++i) {
    const float s = static_cast<float>(sizesIn[i]) / static_cast<float>(in[axes[i]]);
    scale = policy == "not_larger" ? std::min(scale, s) : std::max(scale, s);
  }
  for (auto a : axes) {
    p.scales[a] = scale;
    p.outShape[a] = static_cast<int64_t>(std::floor(in[a] * scale + 0.5f));
  }
  return p;
}

struct AxisTaps {
  std::vector<std::vector<Tap>> taps;  // per output coordinate
  std::vector<bool> outside;           // tf_crop_and_resize: coordinate outside the input
};

float originalCoordinate(const std::string& mode, float x, float scale, int64_t lenIn, int64_t lenOut, float roiStart,
                         float roiEnd) {
  if (mode == "half_pixel") return (x + 0.5f) / scale - 0.5f;
  if (mode == "half_pixel_symmetric") {
    const float adj = static_cast<float>(lenOut) / (scale * static_cast<float>(lenIn));
    const float center = static_cast<float>(lenIn) / 2.f;
    const float offset = center * (1.f - adj);
    return offset + (x + 0.5f) / scale - 0.5f;
  }
  if (mode == "pytorch_half_pixel") return lenOut > 1 ? (x + 0.5f) / scale - 0.5f : 0.f;
  if (mode == "align_corners")
    return lenOut == 1 ? 0.f : x * static_cast<float>(lenIn - 1) / static_cast<float>(lenOut - 1);
  if (mode == "asymmetric") return x / scale;
  if (mode == "tf_half_pixel_for_nn") return (x + 0.5f) / scale;  // opset 11-12
  // tf_crop_and_resize
  if (lenOut > 1)
    return roiStart * (lenIn - 1) + x * (roiEnd - roiStart) * (lenIn - 1) / static_cast<float>(lenOut - 1);
  return 0.5f * (roiStart + roiEnd) * (lenIn - 1);
}

int64_t nearestIndex(const std::string& nearestMode, float xo, float scale) {
  if (nearestMode == "round_prefer_floor")
    return xo == std::floor(xo) + 0.5f ? static_cast<int64_t>(std::floor(xo)) : static_cast<int64_t>(std::round(xo));
  if (nearestMode == "round_prefer_ceil") return static_cast<int64_t>(std::round(xo));
  if (nearestMode == "floor") return static_cast<int64_t>(std::floor(xo));
  if (nearestMode == "ceil") return static_cast<int64_t>(std::ceil(xo));
  // "simple" (Upsample, Resize-10): truncate when upsampling, ceil when downsampling.
  return scale < 1.f ? static_cast<int64_t>(std::ceil(xo)) : static_cast<int64_t>(xo);
}

AxisTaps axisTaps(const NodeContext& ctx, const std::string& mode, const std::string& coordMode, const std::string& nearestMode,
                  float cubicA, bool excludeOutside, int64_t lenIn, int64_t lenOut, float scale, float roiStart, float roiEnd) {
  AxisTaps t;
  t.taps.resize(static_cast<size_t>(lenOut));
  t.outside.assign(static_cast<size_t>(lenOut), false);
  for (int64_t x = 0; x < lenOut; ++x) {
    float xo = originalCoordinate(coordMode, static_cast<float>(x), scale, lenIn, lenOut, roiStart, roiEnd);
    auto& taps = t.taps[static_cast<size_t>(x)];
    if (coordMode == "tf_crop_and_resize" && (xo < 0 || xo > static_cast<float>(lenIn - 1))) {
      t.outside[static_cast<size_t>(x)] = true;
      taps.push_back({0, 0.f});
      continue;
    }
    if (mode == "nearest") {
      int64_t i = nearestIndex(nearestMode, xo, scale);
      taps.push_back({std::clamp<int64_t>(i, 0, lenIn - 1), 1.f});
    } else if (mode == "linear") {
      xo = std::clamp(xo, 0.f, static_cast<float>(lenIn - 1));
      const int64_t i0 = static_cast<int64_t>(std::floor(xo));
      const int64_t i1 = std::min(i0 + 1, lenIn - 1);
      const float w1 = xo - static_cast<float>(i0);
      taps.push_back({i0, 1.f - w1});
      if (w1 != 0.f) taps.push_back({i1, w1});
    } else if (mode == "cubic") {
      const int64_t i = static_cast<int64_t>(std::floor(xo));
      const float s = xo - static_cast<float>(i);
      const float A = cubicA;
      const float d[4] = {s + 1.f, s, 1.f - s, 2.f - s};
      float c[4];
      c[0] = ((A * d[0] - 5 * A) * d[0] + 8 * A) * d[0] - 4 * A;
      c[1] = ((A + 2) * d[1] - (A + 3)) * d[1] * d[1] + 1;
      c[2] = ((A + 2) * d[2] - (A + 3)) * d[2] * d[2] + 1;
      c[3] = ((A * d[3] - 5 * A) * d[3] + 8 * A) * d[3] - 4 * A;
      float sum = 0;
      for (int k = 0; k < 4; ++k) {
        const int64_t idx = i - 1 + k;
        if (excludeOutside && (idx < 0 || idx >= lenIn)) c[k] = 0;
        sum += c[k];
      }
      for (int k = 0; k < 4; ++k) {
        if (c[k] == 0.f) continue;
        const float w = excludeOutside && sum != 0.f ? c[k] / sum : c[k];
        taps.push_back({std::clamp<int64_t>(i - 1 + k, 0, lenIn - 1), w});
      }
    } else {
      attrError(ctx, "unknown mode '" + mode + "'");
    }
  }
  return t;
}

// Resizes one axis of x (float32) with the given taps.
Tensor resizeAxis(const Tensor& x, size_t axis, const AxisTaps& t) {
  Shape out = x.shape;
  out[axis] = static_cast<int64_t>(t.taps.size());
  Tensor r(DataType::kFloat, out);
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= x.shape[d];
  for (size_t d = axis + 1; d < x.shape.size(); ++d) inner *= x.shape[d];
  const int64_t lenIn = x.shape[axis], lenOut = out[axis];
  const float* src = x.data<float>();
  float* dst = r.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < lenOut; ++k) {
      float* row = dst + (o * lenOut + k) * inner;
      for (const Tap& tap : t.taps[static_cast<size_t>(k)]) {
        const float* s = src + (o * lenIn + tap.index) * inner;
        for (int64_t i = 0; i < inner; ++i) row[i] += tap.weight * s[i];
      }
    }
  return r;
}

Tensor resizeCompute(const NodeContext& ctx, const Tensor& xIn, const ResizePlan& plan, const std::vector<float>& roi,
                     const std::string& mode, const std::string& coordMode, const std::string& nearestMode) {
  const float cubicA = ctx.attrs.getFloat("cubic_coeff_a", -0.75f);
  const bool excludeOutside = ctx.attrs.getInt("exclude_outside", 0) != 0;
  const float extrapolation = ctx.attrs.getFloat("extrapolation_value", 0.f);
  if (ctx.attrs.getInt("antialias", 0) != 0 && mode != "nearest")
    for (size_t d = 0; d < plan.scales.size(); ++d)
      if (plan.scales[d] < 1.f) attrError(ctx, "antialiased downsampling is not supported");
  const size_t rank = xIn.shape.size();
  Tensor x = toFloat32(xIn);
  std::vector<std::vector<bool>> outside(rank);
  std::vector<int64_t> axesAll = ctx.attrs.getInts("axes", {});
  for (size_t d = 0; d < rank; ++d) {
    const int64_t lenIn = x.shape[d], lenOut = plan.outShape[d];
    if (lenIn == lenOut && plan.scales[d] == 1.f && coordMode != "tf_crop_and_resize") continue;
    if (lenIn <= 0 && lenOut > 0) shapeError(ctx, "cannot resize an empty axis");
    float roiStart = 0.f, roiEnd = 1.f;
    if (coordMode == "tf_crop_and_resize") {
      // roi is [starts..., ends...] over all dims, or over `axes` when given.
      size_t n = roi.size() / 2, pos = d;
      if (!axesAll.empty()) {
        pos = n;
        for (size_t i = 0; i < axesAll.size(); ++i)
          if (normalizeAxis(ctx, axesAll[i], static_cast<int64_t>(rank)) == static_cast<int64_t>(d)) pos = i;
      }
      if (pos < n) {
        roiStart = roi[pos];
        roiEnd = roi[pos + n];
      }
    }
    AxisTaps t = axisTaps(ctx, mode, coordMode, nearestMode, cubicA, excludeOutside, lenIn, lenOut, plan.scales[d],
                          roiStart, roiEnd);
    x = resizeAxis(x, d, t);
    outside[d] = t.outside;
  }
  if (coordMode == "tf_crop_and_resize") {
    const int64_t n = x.numel();
    Shape st = stridesOf(x.shape);
    for (int64_t i = 0; i < n; ++i)
      for (size_t d = 0; d < rank; ++d)
        if (!outside[d].empty() && outside[d][static_cast<size_t>((i / st[d]) % x.shape[d])]) {
          x.data<float>()[i] = extrapolation;
          break;
        }
  }
  if (!isFloatType(xIn.dtype)) {
    // Integer images: round to nearest and saturate like the reference runtimes.
    Tensor r(xIn.dtype, x.shape);
    for (int64_t i = 0; i < x.numel(); ++i) setFromDouble(r, i, std::nearbyint(x.data<float>()[i]));
    return r;
  }
  return castFromFloat32(x, xIn.dtype);
}

std::vector<float> floatsOf(const Tensor* t) { return t ? toFloats(*t) : std::vector<float>{}; }

// Input layout by opset: 10: (X, scales); 11+: (X, roi, scales, sizes).
struct ResizeInputs {
  const Tensor* roi = nullptr;
  const Tensor* scales = nullptr;
  const Tensor* sizes = nullptr;
};

template <typename Get>
ResizeInputs resizeInputs(const NodeContext& ctx, size_t count, Get get) {
  ResizeInputs r;
  if (ctx.opType == "Upsample" || ctx.opset < 11) {
    r.scales = count > 1 ? get(1) : nullptr;
    return r;
  }
  r.roi = count > 1 ? get(1) : nullptr;
  r.scales = count > 2 ? get(2) : nullptr;
  r.sizes = count > 3 ? get(3) : nullptr;
  // An empty scales tensor means "use sizes".
  if (r.scales && r.scales->numel() == 0) r.scales = nullptr;
  if (r.sizes && r.sizes->numel() == 0) r.sizes = nullptr;
  return r;
}

std::string coordModeOf(const NodeContext& ctx) {
  if (ctx.opType == "Upsample" || ctx.opset < 11) return "asymmetric";
  const std::string m = ctx.attrs.getString("coordinate_transformation_mode", "half_pixel");
  if (m != "half_pixel" && m != "half_pixel_symmetric" && m != "pytorch_half_pixel" && m != "align_corners" &&
      m != "asymmetric" && m != "tf_half_pixel_for_nn" && m != "tf_crop_and_resize")
    attrError(ctx, "unknown coordinate_transformation_mode '" + m + "'");
  return m;
}

std::string modeOf(const NodeContext& ctx) {
  std::string mode = ctx.attrs.getString("mode", "nearest");
  if (mode == "bilinear" || mode == "trilinear") mode = "linear";
  if (mode != "nearest" && mode != "linear" && mode != "cubic") attrError(ctx, "unknown mode '" + mode + "'");
  return mode;
}

std::string nearestModeOf(const NodeContext& ctx) {
  if (ctx.opType == "Upsample" || ctx.opset < 11) return "simple";
  const std::string m = ctx.attrs.getString("nearest_mode", "round_prefer_floor");
  if (m != "round_prefer_floor" && m != "round_prefer_ceil" && m != "floor" && m != "ceil")
    attrError(ctx, "unknown nearest_mode '" + m + "'");
  return m;
}

Tensor resize(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0);
  ResizeInputs ri = resizeInputs(ctx, in.size(), [&](size_t i) { return in[i]; });
  std::vector<float> scales;
  if (ctx.opType == "Upsample" && ctx.opset < 9) scales = ctx.attrs.getFloats("scales", {});
  else scales = floatsOf(ri.scales);
  std::vector<int64_t> sizes = ri.sizes ? ri.sizes->toInt64Vector() : std::vector<int64_t>{};
  if (scales.empty() && sizes.empty()) shapeError(ctx, "needs scales or sizes");
  if (!scales.empty() && !sizes.empty()) shapeError(ctx, "only one of scales and sizes may be given");
  ResizePlan plan = resizePlan(ctx, x.shape, scales, sizes);
  return resizeCompute(ctx, x, plan, floatsOf(ri.roi), modeOf(ctx), coordModeOf(ctx), nearestModeOf(ctx));
}

std::vector<ValueInfo> inferResize(const NodeContext& ctx, const Infos& in) {
  const ValueInfo& x = info(ctx, in, 0);
  if (!x.hasShape) return {unknownRank(x.dtype)};
  bool unknown = false;
  ResizeInputs ri = resizeInputs(ctx, in.size(), [&](size_t i) -> const Tensor* {
    if (!in[i].present) return nullptr;
    if (!in[i].constValue) {
      // A non-constant scales/sizes input leaves the spatial dims unknown.
      if (i >= 2 || ctx.opType == "Upsample" || ctx.opset < 11) unknown = true;
      return nullptr;
    }
    return in[i].constValue;
  });
  std::vector<float> scales;
  if (ctx.opType == "Upsample" && ctx.opset < 9) scales = ctx.attrs.getFloats("scales", {});
  else scales = floatsOf(ri.scales);
  std::vector<int64_t> sizes = ri.sizes ? ri.sizes->toInt64Vector() : std::vector<int64_t>{};
  if (unknown || (scales.empty() && sizes.empty())) return {makeInfo(x.dtype, Shape(x.shape.size(), -1))};
  return {makeInfo(x.dtype, resizePlan(ctx, x.shape, scales, sizes).outShape)};
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"Resize", inferResize, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{resize(ctx, in)};
                            }});
PLANFORGE_REGISTER_OP(OpDef{"Upsample", inferResize, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{resize(ctx, in)};
                            }});

}  // namespace ops
}  // namespace planforge
