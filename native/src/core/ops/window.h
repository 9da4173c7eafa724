// Sliding-window geometry shared by Conv, ConvTranspose and the pooling ops:
// kernel / strides / dilations / pads / auto_pad resolution and output sizes.
#pragma once
#include <cstdint>
#include <vector>

#include "op_util.h"

namespace planforge {
namespace ops {

struct Window {
  std::vector<int64_t> in;        // input spatial dims (-1 unknown, infer only)
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> padBegin;
  std::vector<int64_t> padEnd;
  std::vector<int64_t> out;       // output spatial dims (-1 when unknown)
  size_t rank() const { return kernel.size(); }
};

// Conv / pooling: reads strides, dilations, pads, auto_pad for the given kernel and input
// spatial dims. ceilMode applies the pooling ceil rule (a window may not start in the end padding).
Window forwardWindow(const NodeContext& ctx, const std::vector<int64_t>& inSpatial, const std::vector<int64_t>& kernel,
                     bool ceilMode);

// ConvTranspose: output_padding, output_shape and auto_pad resolution.
Window transposeWindow(const NodeContext& ctx, const std::vector<int64_t>& inSpatial, const std::vector<int64_t>& kernel);

// 3-D view of a window (1-D and 2-D padded with unit dims) used by the kernels.
struct Window3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
  int64_t inSize() const { return in[0] * in[1] * in[2]; }
  int64_t outSize() const { return out[0] * out[1] * out[2]; }
  int64_t kSize() const { return k[0] * k[1] * k[2]; }
};
Window3 toWindow3(const NodeContext& ctx, const Window& w);

// col[(c*K + kk) * OS + o] = x[c, in(o, kk)] or 0 in the padding; x is [channels, in...].
void im2col(const Window3& w, int64_t channels, const float* x, float* col);
// Adds col back into y [channels, out...] where col is laid out as [channels*K, in positions]
// (the transpose of im2col, for ConvTranspose: here `in` of w is the transposed conv's input).
void col2imAdd(const Window3& w, int64_t channels, const float* col, float* y);

}  // namespace ops
}  // namespace planforge
