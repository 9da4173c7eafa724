// The activation epilogue of the fused layers (planforge.FusedConv / FusedGemm / FusedMatMul):
// y = act(y + residual), applied in float32 right after the GEMM, as TensorRT's fused epilogues do.
#pragma once
#include <string>

#include "../tensor.h"
#include "op_util.h"

namespace planforge {
namespace ops {

struct FusedEpilogue {
  enum class Kind { kNone, kRelu, kClip, kSigmoid, kHardSigmoid, kHardSwish, kGelu, kGeluTanh, kSiLU, kTanh, kLeakyRelu };
  Kind kind = Kind::kNone;
  float alpha = 0, beta = 0;
};

// Reads the `activation`, `activation_alpha`, `activation_beta` attributes (E_INVALID_MODEL on an unknown name).
FusedEpilogue fusedEpilogue(const NodeContext& ctx);

// y (float32) += residual (same shape, any float dtype; nullptr for none), then the activation in place.
void applyEpilogue(const NodeContext& ctx, const FusedEpilogue& e, Tensor& y, const Tensor* residual);

// Infer check for the residual input: its shape must equal the layer's output shape.
void checkResidualInfo(const NodeContext& ctx, const ValueInfo& out, const ValueInfo& residual);

}  // namespace ops
}  // namespace planforge
