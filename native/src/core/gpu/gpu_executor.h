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

namespace planforge {
namespace gpu {

struct GpuExecutorOptions {
  int deviceOrdinal = 0;
  bool cudaGraph = true;  // capture each specialization into a CUDA graph when possible
};

struct GpuLayerStats {
  int gpuLayers = 0;      // layers launched as kernels
  int aliasLayers = 0;    // Reshape & co. resolved to a view (no kernel)
  int foldedLayers = 0;   // shape arithmetic computed on the host while specializing
  int cpuLayers = 0;      // CPU reference fallbacks (host round trip)
  std::vector<std::string> cpuLayerNames;  // "OpType 'name'"
  bool cudaGraph = false;
  std::string cudaGraphNote;  // why no graph, when there is none
  size_t arenaBytes = 0;      // activation arena after memory planning
  size_t naiveBytes = 0;      // sum of all activation sizes (no reuse), for comparison
  size_t weightBytes = 0;
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

  const DeviceInfo& device() const;
  bool kernelsFromPlan() const;  // false: the plan had no kernels, the binary's embedded cubin was used

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpu
}  // namespace planforge
