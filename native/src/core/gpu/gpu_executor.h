// Runs a plan on an NVIDIA GPU through the CUDA driver API (dlopen'ed, see cuda_driver.h):
// loads the plan's cubin, uploads the weights once, and for each distinct set of input shapes
// builds a "specialization": host-side folding of shape arithmetic, static shapes for every
// layer, a memory plan that reuses activation buffers, the kernel launches and (when every layer
// runs on the GPU) a captured CUDA graph. Layers without a GPU kernel run on the CPU reference
// kernels with a host round trip (correct, slow, and reported in the stats).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../plan/plan.h"
#include "../tensor.h"
#include "device.h"
#include "timing_cache.h"

namespace planforge {
namespace gpu {

struct GpuExecutorOptions {
  int deviceOrdinal = 0;
  bool cudaGraph = true;  // capture each specialization into a CUDA graph when possible
  // Time every candidate tactic of each GEMM / convolution layer on this GPU while specializing
  // and keep the fastest (otherwise: the plan's tactic, or the heuristic one for untuned plans).
  bool autotune = false;
  // With autotune: measurements are looked up here first (hits skip the timing) and recorded.
  TimingCache* timingCache = nullptr;
  // Run every GEMM / convolution layer that cuBLASLt can take with cuBLASLt, whatever the plan's
  // tactic (A/B runs and checks of the cuBLASLt path; a no-op where the library is missing).
  bool preferCublasLt = false;
  // With preferCublasLt: FP16 / INT8 layers take the FP16-operand cuBLASLt tactics (FP16 weights,
  // FP16 im2col / cast activations, FP32 accumulation) instead of FP32 operands with FAST_16F.
  bool preferCublasLtF16 = false;
};

struct GpuLayerStats {
  int gpuLayers = 0;      // layers launched as kernels
  int aliasLayers = 0;    // Reshape & co. resolved to a view (no kernel)
  int foldedLayers = 0;   // shape arithmetic computed on the host while specializing
  int cpuLayers = 0;      // CPU reference fallbacks (host round trip)
  std::vector<std::string> cpuLayerNames;  // "OpType 'name'"
  bool cudaGraph = false;
  std::string cudaGraphNote;  // why no graph, when there is none
  bool programmaticLaunch = false;  // the graph's kernels use programmatic dependent launch (sm_90+)
  size_t arenaBytes = 0;      // activation arena after memory planning
  size_t naiveBytes = 0;      // sum of all activation sizes (no reuse), for comparison
  size_t weightBytes = 0;
  int tunedLayers = 0;        // layers whose tactic was chosen by autotune
  int timingCacheHits = 0;    // of those, answered by the timing cache
  double tuneSeconds = 0;
  int cublasLtLayers = 0;     // layers running on cuBLASLt
  int cublasLtFallbacks = 0;  // layers whose tactic is cuBLASLt but run on our kernels (library missing here)
  int cublasLtF16Layers = 0;  // of cublasLtLayers, those with FP16 operands (kTacticConvCublasLtF16 / kTacticGemmCublasLtF16)
  std::string cublasLt;       // "libcublasLt.so.13 (version 130100)" or why it is not available
  // cuBLASLt calls by compute type: "68:12,68h:30,74:40" (68 FP32, 74 FP16 fast, 77 TF32; "h": FP16 operands)
  std::string cublasLtComputeTypes;
  // Convolution epilogues on cuBLASLt (tactics.h planConvLtEpilogue): cuBLASLt convolutions with the
  // bias (as C) and / or the activation inside cuBLASLt, the bytes of the Co x HW bias matrices (part of weightBytes), and the FP16 plans'
  // RoundToFp16s left to the reading convolutions (deferrableConvRounds).
  int convEpiloguesOnLt = 0;
  std::vector<std::string> convEpilogueLayers;  // their names
  size_t biasMatrixBytes = 0;
  int deferredRounds = 0;
  int convBiasAsCRefused = 0;  // lowerings where cuBLASLt had no algorithm for the bias matrix as C (stride 0): the pass instead
  int launches = 0;  // kernel launches + cuBLASLt calls of one execution (GPU steps)
  int nhwcLayers = 0;  // convolutions and GEMMs on the NHWC FP16 kernels (kTacticConvNhwc* / kTacticGemmNhwc*)
  int nhwcValues = 0;  // activations stored as FP16 NHWC between them (views counted once per name)
  int halfValues = 0;  // activations stored as FP16 row-major (half_layout.h)
  std::string tactics;  // GEMM / convolution layers by tactic: "conv_nhwc_f16_128x64:12,gemm_cublaslt:1"
};

struct GpuTiming {
  std::vector<double> gpuMs;   // per iteration, CUDA events around the execution on the stream
  std::vector<double> hostMs;  // per iteration, copy-in + execute + copy-out + synchronize (steady clock)
};

class GpuExecutor {
 public:
  // Throws E_NO_GPU (no driver / device), E_WRONG_SM (plan for another SM), E_PLAN_FORMAT (bad cubin).
  explicit GpuExecutor(const Plan& plan, const GpuExecutorOptions& options = {});
  ~GpuExecutor();
  GpuExecutor(const GpuExecutor&) = delete;
  GpuExecutor& operator=(const GpuExecutor&) = delete;

  // Same contract as runGraph: inputs by graph input name, outputs by graph output name.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs);
  GpuTiming time(const std::map<std::string, Tensor>& inputs, int warmup, int iterations);
  // Per-layer GPU time (ms, averaged over `iterations`) by layer, in execution order, without a graph.
  std::vector<std::pair<std::string, double>> profileLayers(const std::map<std::string, Tensor>& inputs, int iterations);
  GpuLayerStats stats(const std::map<std::string, Tensor>& inputs);

  // Tactic chosen for each layer in the specialization of these inputs (by layer name; GPU layers).
  std::map<std::string, int64_t> chosenTactics(const std::map<std::string, Tensor>& inputs);

  const DeviceInfo& device() const;
  bool kernelsFromPlan() const;  // false: the plan had no kernels, the binary's embedded cubin was used

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Autotunes the plan on this GPU for the given inputs (typically the profiles' opt shapes):
// writes the fastest tactic of every GEMM / convolution layer into the layer table, marks the
// plan tuned and attaches the cubin of its SM. E_WRONG_SM when the GPU does not match the plan.
GpuLayerStats tunePlan(Plan& plan, const std::map<std::string, Tensor>& inputs, int deviceOrdinal = 0,
                       TimingCache* timingCache = nullptr);

}  // namespace gpu
}  // namespace planforge
