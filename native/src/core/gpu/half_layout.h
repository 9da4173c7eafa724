// Which activations of an FP16 plan the GPU executor stores as FP16 (row-major, the logical shape)
// instead of FP32: the transformer path (GEMM -> attention -> GEMM -> LayerNorm -> GEMM ...), so
// its cuBLASLt GEMMs read FP16 activations with no cast and write FP16 (no separate rounding pass)
// and every tensor between them moves half the bytes. Decided once per executor from the graph
// alone, so it is the same for every input shape and testable without a GPU.
#pragma once
#include <set>
#include <string>

#include "../graph.h"

namespace planforge {
namespace gpu {

struct HalfLayout {
  std::set<std::string> values;  // stored as FP16
  std::set<size_t> gemms;        // MatMul / FusedMatMul layers that read or write one (run on cuBLASLt FP16)
};

// roundFused: layers whose one reader is their RoundToFp16, folded into them by the executor.
// A value is FP16 when its producer is an FP16 layer that can write it (a MatMul / FusedMatMul with
// constant 2-D weights, a FusedAttention with head size 32 / 64 / 128, a LayerNormalization over
// the last axis; the RoundToFp16 after it folded, so FP16 storage is exactly that rounding) and
// every reader can read it (a GEMM's A operand, a FusedMatMul's residual when that GEMM writes
// FP16 too, FusedAttention's Q / K / V, LayerNormalization's input, Shape / Size); never a graph output.
HalfLayout planHalfLayout(const Graph& g, const std::set<size_t>& roundFused);

}  // namespace gpu
}  // namespace planforge
