// INT8 layers (Node::precision == "int8") in TensorRT's explicit-quantization form: the plan
// carries QuantizeLinear/DequantizeLinear pairs, so the CPU reference executor computes exactly
// what an INT8 engine does (values rounded half-to-even and clamped to int8 at every quantized
// input) and a GPU runtime fuses each Q/DQ pair into its INT8 kernel.
//  - activations: per-tensor symmetric scale amax / 127 from calibration (zero point 0),
//    one Q/DQ pair per tensor, shared by all INT8 layers reading it;
//  - weights: stored as int8 initializers with a per-output-channel symmetric scale
//    (max |w| of the channel / 127, values clamped to [-127, 127]) and one DequantizeLinear;
//  - bias, residual and outputs stay float32 (the fused epilogue runs in float).
// Only Conv, Gemm, MatMul and their fused forms have INT8 kernels; other layers asked to run in
// INT8 fall back to FP32 (their label says so). Inputs that already come from a
// DequantizeLinear (a model exported with Q/DQ) keep the model's scales: they are neither
// calibrated nor quantized again.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "../graph.h"
#include "../plan/plan.h"

namespace planforge {

// The layer has an INT8 implementation (op type and constant / pre-quantized weights).
bool hasInt8Kernel(const Graph& g, const Node& n);
// Activation tensors the INT8 layers of g read that need a calibrated range.
std::set<std::string> int8ActivationTensors(const Graph& g);
// Relabels INT8 layers without an INT8 kernel as fp32 and inserts the Q/DQ nodes; throws
// BuildError(kCalibration) when table lacks a needed tensor. Re-runs shape inference.
void lowerInt8Layers(Graph& g, const CalibrationTable& table, std::vector<std::string>& changes);

}  // namespace planforge
