// Which convolutions of a plan run on the NHWC FP16 kernels (tactics.h kTacticConvNhwc*) and which
// activations stay FP16 NHWC between layers. Decided once per executor from the graph alone, so it
// is the same for every input shape and testable without a GPU.
#pragma once
#include <set>
#include <string>

#include "../graph.h"

namespace planforge {
namespace gpu {

struct NhwcLayout {
  std::set<size_t> convs;          // node indices of the convolutions on NHWC tactics
  std::set<std::string> values;    // values stored as FP16 NHWC (shapes stay the logical NCHW ones)
};

// MaxPool the NHWC kernel takes (2-D, one output, row-major indices).
bool nhwcPoolable(const Node& n);

// candidates: eligible convolutions the plan (or the autotuner) would run on an NHWC tactic.
// roundFused: layers whose one reader is their RoundToFp16, folded into them by the executor.
// A value is NHWC when its producer writes NHWC (a member convolution whose RoundToFp16 is folded,
// so FP16 storage is exactly that rounding; a MaxPool or RoundToFp16 of an NHWC value) and every
// reader takes NHWC (a member's input 0 or residual, MaxPool / RoundToFp16 with an NHWC output,
// GlobalAveragePool); never a graph output. A member must read an NHWC value or a graph input
// (the stem: one reformat per run); members that would pay a reformat in the middle of the graph
// (an FP32 producer such as a depthwise convolution or a Mul) are dropped and the values
// recomputed, so NHWC stays on conv -> conv chains (ResNet) and off graphs without them.
NhwcLayout planNhwcLayout(const Graph& g, const std::set<size_t>& candidates, const std::set<size_t>& roundFused);

}  // namespace gpu
}  // namespace planforge
