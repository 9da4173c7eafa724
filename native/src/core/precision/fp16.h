// FP16 layers (Node::precision == "fp16"): weights stored in half precision, math in float32,
// tensors stored in half precision - simulated exactly on the CPU reference executor.
//
// Why a graph rewrite with planforge.RoundToFp16 (and not float16 tensors end to end, nor
// Cast float->float16->float pairs): TensorRT keeps FP16 tensors between FP16 layers and inserts
// reformat layers where precision changes. Rounding every float tensor an FP16 layer writes (and
// every FP32 tensor it reads) to the nearest half reproduces exactly the values an FP16 engine
// computes with FP32 accumulation, while every kernel keeps running its float32 path (not all
// reference kernels take float16 inputs), and each reformat stays one visible node in the plan.
// Layers that only move or select values (Reshape, Transpose, MaxPool, Relu, Concat, ...) need no
// rounding after them when their inputs are already FP16 values.
//
// Weights: float32 initializers read by FP16 layers become float16 initializers. Conv,
// ConvTranspose, Gemm, the fused planforge ops, the normalizations and PRelu read them directly
// (their kernels convert to float); other ops read them through one Cast(to=float) node per weight. Parameter inputs that
// are not tensor data (Resize scales, Clip bounds, Pad values, shapes) are left alone.
#pragma once
#include <string>
#include <vector>

#include "../graph.h"

namespace planforge {

// Rewrites g for its FP16 layers; appends a summary to changes. Re-runs shape inference.
void lowerFp16Layers(Graph& g, std::vector<std::string>& changes);

}  // namespace planforge
