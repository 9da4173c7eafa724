#include "window.h"

#include <algorithm>
#include <cstring>

namespace planforge {
namespace ops {

namespace {

std::vector<int64_t> intsOr(const NodeContext& ctx, const char* name, size_t n, int64_t dflt) {
  std::vector<int64_t> v = ctx.attrs.getInts(name, std::vector<int64_t>(n, dflt));
  if (v.empty()) v.assign(n, dflt);
  if (v.size() != n)
    attrError(ctx, std::string(name) + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(n));
  for (auto x : v)
    if (x <= 0) attrError(ctx, std::string(name) + " must be positive");
  return v;
}

int64_t ceilDiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

Window forwardWindow(const NodeContext& ctx, const std::vector<int64_t>& inSpatial, const std::vector<int64_t>& kernel,
                     bool ceilMode) {
  const size_t n = kernel.size();
  if (inSpatial.size() != n)
    shapeError(ctx, "kernel has " + std::to_string(n) + " spatial dims but input has " + std::to_string(inSpatial.size()));
  Window w;
  w.in = inSpatial;
  w.kernel = kernel;
  for (auto k : kernel)
    if (k <= 0) attrError(ctx, "kernel_shape must be positive");
  w.strides = intsOr(ctx, "strides", n, 1);
  w.dilations = intsOr(ctx, "dilations", n, 1);
  std::vector<int64_t> pads = ctx.attrs.getInts("pads", std::vector<int64_t>(2 * n, 0));
  if (pads.empty()) pads.assign(2 * n, 0);
  if (pads.size() != 2 * n) attrError(ctx, "pads must have " + std::to_string(2 * n) + " values");
  for (auto p : pads)
    if (p < 0) attrError(ctx, "pads must be non-negative");
  w.padBegin.assign(pads.begin(), pads.begin() + n);
  w.padEnd.assign(pads.begin() + n, pads.end());
  std::string autoPad = ctx.attrs.getString("auto_pad", "NOTSET");
  if (autoPad != "NOTSET" && autoPad != "SAME_UPPER" && autoPad != "SAME_LOWER" && autoPad != "VALID")
    attrError(ctx, "unknown auto_pad '" + autoPad + "'");
  w.out.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const int64_t ek = w.dilations[i] * (kernel[i] - 1) + 1;  // effective kernel extent
    const int64_t in = inSpatial[i];
    const int64_t s = w.strides[i];
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      if (in < 0) continue;
      const int64_t out = ceilDiv(in, s);
      const int64_t total = std::max<int64_t>(0, (out - 1) * s + ek - in);
      const int64_t small = total / 2, big = total - total / 2;
      w.padBegin[i] = autoPad == "SAME_UPPER" ? small : big;
      w.padEnd[i] = autoPad == "SAME_UPPER" ? big : small;
      w.out[i] = out;
      continue;
    }
    if (autoPad == "VALID") w.padBegin[i] = w.padEnd[i] = 0;
    if (in < 0) continue;
    const int64_t span = in + w.padBegin[i] + w.padEnd[i] - ek;
    if (span < 0)
      shapeError(ctx, "kernel extent " + std::to_string(ek) + " exceeds padded input " +
                          std::to_string(in + w.padBegin[i] + w.padEnd[i]));
    int64_t out = (ceilMode ? ceilDiv(span, s) : floorDiv(span, s)) + 1;
    // The last window must start inside the input or the begin padding.
    if (ceilMode && (out - 1) * s >= in + w.padBegin[i]) --out;
    w.out[i] = out;
  }
  return w;
}

Window transposeWindow(const NodeContext& ctx, const std::vector<int64_t>& inSpatial, const std::vector<int64_t>& kernel) {
  const size_t n = kernel.size();
  if (inSpatial.size() != n)
    shapeError(ctx, "kernel has " + std::to_string(n) + " spatial dims but input has " + std::to_string(inSpatial.size()));
  Window w;
  w.in = inSpatial;
  w.kernel = kernel;
  w.strides = intsOr(ctx, "strides", n, 1);
  w.dilations = intsOr(ctx, "dilations", n, 1);
  std::vector<int64_t> pads = ctx.attrs.getInts("pads", std::vector<int64_t>(2 * n, 0));
  if (pads.empty()) pads.assign(2 * n, 0);
  if (pads.size() != 2 * n) attrError(ctx, "pads must have " + std::to_string(2 * n) + " values");
  w.padBegin.assign(pads.begin(), pads.begin() + n);
  w.padEnd.assign(pads.begin() + n, pads.end());
  std::vector<int64_t> outPad = ctx.attrs.getInts("output_padding", std::vector<int64_t>(n, 0));
  if (outPad.empty()) outPad.assign(n, 0);
  if (outPad.size() != n) attrError(ctx, "output_padding must have " + std::to_string(n) + " values");
  std::vector<int64_t> outShape = ctx.attrs.getInts("output_shape", {});
  // output_shape may list the full [N, C, spatial...] shape in old exporters.
  if (outShape.size() == n + 2) outShape.erase(outShape.begin(), outShape.begin() + 2);
  if (!outShape.empty() && outShape.size() != n) attrError(ctx, "output_shape must have " + std::to_string(n) + " values");
  const std::string autoPad = ctx.attrs.getString("auto_pad", "NOTSET");
  w.out.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const int64_t ek = w.dilations[i] * (kernel[i] - 1) + 1;
    const int64_t in = inSpatial[i];
    const int64_t s = w.strides[i];
    if (!outShape.empty() || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      if (in < 0) {
        if (!outShape.empty()) w.out[i] = outShape[i];
        continue;
      }
      const int64_t out = !outShape.empty() ? outShape[i] : in * s;
      const int64_t total = s * (in - 1) + outPad[i] + ek - out;
      if (total < 0 && outShape.empty()) shapeError(ctx, "negative total padding");
      // Spec: SAME_UPPER puts the extra pad at the end, otherwise at the beginning. Floor division
      // as in the reference implementation (a negative total extends the output at the end).
      const int64_t small = floorDiv(total, 2), big = total - small;
      if (autoPad == "SAME_UPPER") {
        w.padBegin[i] = small;
        w.padEnd[i] = big;
      } else {
        w.padBegin[i] = big;
        w.padEnd[i] = small;
      }
      w.out[i] = out;
      continue;
    }
    if (autoPad == "VALID") w.padBegin[i] = w.padEnd[i] = 0;
    if (in < 0) continue;
    w.out[i] = s * (in - 1) + outPad[i] + ek - w.padBegin[i] - w.padEnd[i];
    if (w.out[i] <= 0) shapeError(ctx, "non-positive output size");
  }
  return w;
}

Window3 toWindow3(const NodeContext& ctx, const Window& w) {
  if (w.rank() < 1 || w.rank() > 3) shapeError(ctx, "only 1-D, 2-D and 3-D windows are supported");
  Window3 r;
  const size_t off = 3 - w.rank();
  for (size_t i = 0; i < 3; ++i) {
    if (i < off) {
      r.in[i] = r.out[i] = r.k[i] = r.s[i] = r.d[i] = 1;
      r.pb[i] = r.pe[i] = 0;
    } else {
      const size_t j = i - off;
      r.in[i] = w.in[j];
      r.out[i] = w.out[j];
      r.k[i] = w.kernel[j];
      r.s[i] = w.strides[j];
      r.d[i] = w.dilations[j];
      r.pb[i] = w.padBegin[j];
      r.pe[i] = w.padEnd[j];
    }
  }
  return r;
}

void im2col(const Window3& w, int64_t channels, const float* x, float* col) {
  const int64_t OS = w.outSize();
  const int64_t IS = w.inSize();
  float* dst = col;
  for (int64_t c = 0; c < channels; ++c) {
    const float* xc = x + c * IS;
    for (int64_t kd = 0; kd < w.k[0]; ++kd)
      for (int64_t kh = 0; kh < w.k[1]; ++kh)
        for (int64_t kw = 0; kw < w.k[2]; ++kw) {
          for (int64_t od = 0; od < w.out[0]; ++od) {
            const int64_t id = od * w.s[0] - w.pb[0] + kd * w.d[0];
            for (int64_t oh = 0; oh < w.out[1]; ++oh) {
              const int64_t ih = oh * w.s[1] - w.pb[1] + kh * w.d[1];
              float* row = dst + (od * w.out[1] + oh) * w.out[2];
              if (id < 0 || id >= w.in[0] || ih < 0 || ih >= w.in[1]) {
                std::fill(row, row + w.out[2], 0.f);
                continue;
              }
              const float* src = xc + (id * w.in[1] + ih) * w.in[2];
              const int64_t base = kw * w.d[2] - w.pb[2];
              if (w.s[2] == 1) {
                // Contiguous run: zero the parts that fall into the padding, copy the rest.
                const int64_t lo = std::max<int64_t>(0, -base);
                const int64_t hi = std::min<int64_t>(w.out[2], w.in[2] - base);
                if (hi <= lo) {
                  std::fill(row, row + w.out[2], 0.f);
                  continue;
                }
                std::fill(row, row + lo, 0.f);
                std::memcpy(row + lo, src + base + lo, static_cast<size_t>(hi - lo) * sizeof(float));
                std::fill(row + hi, row + w.out[2], 0.f);
              } else {
                for (int64_t ow = 0; ow < w.out[2]; ++ow) {
                  const int64_t iw = ow * w.s[2] + base;
                  row[ow] = (iw >= 0 && iw < w.in[2]) ? src[iw] : 0.f;
                }
              }
            }
          }
          dst += OS;
        }
  }
}

void col2imAdd(const Window3& w, int64_t channels, const float* col, float* y) {
  // Here w.in is the transposed conv's input (positions of col columns) and w.out its output.
  const int64_t IS = w.inSize();
  const int64_t OS = w.outSize();
  const float* src = col;
  for (int64_t c = 0; c < channels; ++c) {
    float* yc = y + c * OS;
    for (int64_t kd = 0; kd < w.k[0]; ++kd)
      for (int64_t kh = 0; kh < w.k[1]; ++kh)
        for (int64_t kw = 0; kw < w.k[2]; ++kw) {
          for (int64_t id = 0; id < w.in[0]; ++id) {
            const int64_t od = id * w.s[0] - w.pb[0] + kd * w.d[0];
            if (od < 0 || od >= w.out[0]) continue;
            for (int64_t ih = 0; ih < w.in[1]; ++ih) {
              const int64_t oh = ih * w.s[1] - w.pb[1] + kh * w.d[1];
              if (oh < 0 || oh >= w.out[1]) continue;
              const float* row = src + (id * w.in[1] + ih) * w.in[2];
              float* dst = yc + (od * w.out[1] + oh) * w.out[2];
              for (int64_t iw = 0; iw < w.in[2]; ++iw) {
                const int64_t ow = iw * w.s[2] - w.pb[2] + kw * w.d[2];
                if (ow >= 0 && ow < w.out[2]) dst[ow] += row[iw];
              }
            }
          }
          src += IS;
        }
  }
}

}  // namespace ops
}  // namespace planforge
