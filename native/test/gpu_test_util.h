// Shared by the GPU test files: a plan run on the GPU against the CPU reference.
#pragma once
#include <map>
#include <string>

#include "core/executor.h"
#include "core/gpu/cubin.h"
#include "core/gpu/cuda_driver.h"
#include "core/gpu/device.h"
#include "core/gpu/gpu_executor.h"
#include "core/gpu/tactics.h"
#include "test_framework.h"
#include "test_util.h"

namespace pftest {

// A GPU with this build's kernels for its SM (the GPU parts of the tests return early without one).
inline bool gpuWithKernels(gpu::DeviceInfo* dev) {
  if (!gpu::cudaDriverAvailable()) return false;
  *dev = gpu::deviceInfo(0);
  return gpu::embeddedCubin(dev->sm) != nullptr;
}

// Runs the plan on the GPU (CUDA graph, replayed once: bit-identical) and checks every output
// against the CPU reference within tol. Returns the stats and the outputs.
inline gpu::GpuLayerStats matchCpu(Plan p, const std::map<std::string, Tensor>& in, double tol, gpu::GpuExecutorOptions o,
                                   std::map<std::string, Tensor>* outs = nullptr) {
  if (!p.header.tuned) gpu::prepareGpuPlan(p);
  const auto want = runGraph(p.graph, in);
  gpu::GpuExecutor ex(p, o);
  const auto got = ex.run(in);
  const gpu::GpuLayerStats st = ex.stats(in);
  CHECK_EQ(st.cpuLayers, 0);
  CHECK(st.cudaGraph);
  for (const auto& kv : want) {
    const Tensor& g = got.at(kv.first);
    CHECK(g.shape == kv.second.shape);
    const double e = maxRelErr(g, kv.second);
    if (!(e <= tol)) PF_FAIL(p.header.precision << " output " << kv.first << " relative error " << e << " > " << tol);
  }
  const auto again = ex.run(in);
  for (const auto& kv : got) CHECK(again.at(kv.first).bytes == kv.second.bytes);
  if (outs) *outs = got;
  return st;
}

}  // namespace pftest
