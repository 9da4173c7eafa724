// Shared pieces of the planforge GPU kernels. Every kernel is extern "C" (stable names for
// cuModuleGetFunction) and takes its parameters by value; the host mirrors these structs in
// native/src/core/gpu/kernel_abi.h — keep the two in sync (same field order and types).
#pragma once
#include <cuda_fp16.h>
#include <stdint.h>

#define PF_MAX_RANK 6

// Programmatic dependent launch (Hopper): inside a CUDA graph the executor launches our kernels with
// CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, so a kernel is scheduled while the one before
// it is still finishing instead of after it has drained. So every kernel starts here: it waits for
// the previous grid to complete and flush its memory before touching memory (the dependency is
// transitive: that grid waited for its own predecessor), then lets the next kernel be scheduled.
// Launched without the attribute (eager runs, other SMs), the wait returns at once. The cubin's
// pf_programmatic_launch_v1 marker tells the executor that every kernel has this prologue.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PF_KERNEL_PROLOGUE() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define PF_KERNEL_PROLOGUE() \
  do {                       \
  } while (0)
#endif

// Activation / unary op codes (kernel_abi.h: UnaryOp). Also the fused epilogue of GEMM/conv.
enum PfUnary {
  PF_COPY = 0, PF_RELU = 1, PF_SIGMOID = 2, PF_TANH = 3, PF_HARDSIGMOID = 4, PF_HARDSWISH = 5,
  PF_CLIP = 6, PF_LEAKYRELU = 7, PF_GELU = 8, PF_GELU_TANH = 9, PF_SILU = 10, PF_ERF = 11,
  PF_EXP = 12, PF_SQRT = 13, PF_NEG = 14, PF_ABS = 15, PF_RECIPROCAL = 16, PF_ROUND_FP16 = 17,
  PF_LOG = 18,
};

__device__ __forceinline__ float pfActivate(float v, int op, float alpha, float beta) {
  switch (op) {
    case PF_COPY: return v;
    case PF_RELU: return v > 0.f ? v : 0.f;
    case PF_SIGMOID: return 1.f / (1.f + __expf(-v));
    case PF_TANH: return tanhf(v);
    case PF_HARDSIGMOID: return fminf(fmaxf(alpha * v + beta, 0.f), 1.f);
    case PF_HARDSWISH: return v * fminf(fmaxf(v * (1.f / 6.f) + 0.5f, 0.f), 1.f);
    case PF_CLIP: return fminf(fmaxf(v, alpha), beta);
    case PF_LEAKYRELU: return v >= 0.f ? v : alpha * v;
    case PF_GELU: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    case PF_GELU_TANH: return 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case PF_SILU: return v / (1.f + __expf(-v));
    case PF_ERF: return erff(v);
    case PF_EXP: return expf(v);
    case PF_SQRT: return sqrtf(v);
    case PF_NEG: return -v;
    case PF_ABS: return fabsf(v);
    case PF_RECIPROCAL: return 1.f / v;
    case PF_ROUND_FP16: return __half2float(__float2half_rn(v));
    case PF_LOG: return logf(v);
  }
  return v;
}

// Epilogue of GEMM-like kernels: y = act(acc * alpha + bias + residual).
struct PfEpilogue {
  const float* bias;       // may be null; element (m, n) at bias[m * biasStrideM + n * biasStrideN]
  long long biasStrideM, biasStrideN;
  const float* residual;   // may be null; same layout as the output
  float alpha;             // scales the accumulator (Gemm's alpha)
  float beta;              // scales the bias (Gemm's beta)
  int act;
  float actAlpha, actBeta;
};

__device__ __forceinline__ float pfEpilogue(const PfEpilogue& e, float acc, long long m, long long n, long long outIndex) {
  float v = acc * e.alpha;
  if (e.bias) v += e.beta * e.bias[m * e.biasStrideM + n * e.biasStrideN];
  if (e.residual) v += e.residual[outIndex];
  return pfActivate(v, e.act, e.actAlpha, e.actBeta);
}
