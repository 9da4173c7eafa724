#include "cuda_driver.h"

#include <dlfcn.h>

#include <mutex>

#include "../tensor.h"

namespace planforge {
namespace gpu {

namespace {

template <typename Fn>
void bind(void* lib, Fn& fn, const std::string& libraryName, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (void* sym = dlsym(lib, n)) {
      fn = reinterpret_cast<Fn>(sym);
      return;
    }
  }
  throw BuildError(ErrorCode::kNoGpu, std::string("no usable CUDA driver: ") + libraryName + " lacks " + *names.begin() +
                                          " (driver too old?)");
}

}  // namespace

CudaDriverApi loadCudaDriver(const std::string& libraryName) {
  // RTLD_LOCAL: the driver's symbols stay out of the global namespace of the Node process.
  void* lib = dlopen(libraryName.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    throw BuildError(ErrorCode::kNoGpu, "no CUDA driver: " + libraryName + " not found (" + (why ? why : "dlopen failed") +
                                            "); GPU execution needs an NVIDIA driver");
  }
  CudaDriverApi a{};
  const std::string& n = libraryName;
  bind(lib, a.cuInit, n, {"cuInit"});
  bind(lib, a.cuDriverGetVersion, n, {"cuDriverGetVersion"});
  bind(lib, a.cuDeviceGetCount, n, {"cuDeviceGetCount"});
  bind(lib, a.cuDeviceGet, n, {"cuDeviceGet"});
  bind(lib, a.cuDeviceGetName, n, {"cuDeviceGetName"});
  bind(lib, a.cuDeviceGetAttribute, n, {"cuDeviceGetAttribute"});
  bind(lib, a.cuDeviceTotalMem, n, {"cuDeviceTotalMem_v2"});
  bind(lib, a.cuDevicePrimaryCtxRetain, n, {"cuDevicePrimaryCtxRetain"});
  bind(lib, a.cuDevicePrimaryCtxRelease, n, {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"});
  bind(lib, a.cuCtxSetCurrent, n, {"cuCtxSetCurrent"});
  bind(lib, a.cuMemAlloc, n, {"cuMemAlloc_v2"});
  bind(lib, a.cuMemFree, n, {"cuMemFree_v2"});
  bind(lib, a.cuMemAllocHost, n, {"cuMemAllocHost_v2"});
  bind(lib, a.cuMemFreeHost, n, {"cuMemFreeHost"});
  bind(lib, a.cuMemcpyHtoDAsync, n, {"cuMemcpyHtoDAsync_v2"});
  bind(lib, a.cuMemcpyDtoHAsync, n, {"cuMemcpyDtoHAsync_v2"});
  bind(lib, a.cuMemcpyDtoDAsync, n, {"cuMemcpyDtoDAsync_v2"});
  bind(lib, a.cuMemsetD8Async, n, {"cuMemsetD8Async"});
  bind(lib, a.cuModuleLoadData, n, {"cuModuleLoadData"});
  bind(lib, a.cuModuleUnload, n, {"cuModuleUnload"});
  bind(lib, a.cuModuleGetFunction, n, {"cuModuleGetFunction"});
  bind(lib, a.cuFuncSetAttribute, n, {"cuFuncSetAttribute"});
  bind(lib, a.cuLaunchKernel, n, {"cuLaunchKernel"});
  a.cuLaunchKernelEx = reinterpret_cast<decltype(a.cuLaunchKernelEx)>(dlsym(lib, "cuLaunchKernelEx"));
  bind(lib, a.cuStreamCreate, n, {"cuStreamCreate"});
  bind(lib, a.cuStreamDestroy, n, {"cuStreamDestroy_v2"});
  bind(lib, a.cuStreamSynchronize, n, {"cuStreamSynchronize"});
  bind(lib, a.cuEventCreate, n, {"cuEventCreate"});
  bind(lib, a.cuEventDestroy, n, {"cuEventDestroy_v2"});
  bind(lib, a.cuEventRecord, n, {"cuEventRecord"});
  bind(lib, a.cuEventSynchronize, n, {"cuEventSynchronize"});
  bind(lib, a.cuEventElapsedTime, n, {"cuEventElapsedTime_v2", "cuEventElapsedTime"});
  bind(lib, a.cuStreamBeginCapture, n, {"cuStreamBeginCapture_v2"});
  bind(lib, a.cuStreamEndCapture, n, {"cuStreamEndCapture"});
  bind(lib, a.cuGraphInstantiateWithFlags, n, {"cuGraphInstantiateWithFlags"});
  bind(lib, a.cuGraphLaunch, n, {"cuGraphLaunch"});
  bind(lib, a.cuGraphExecDestroy, n, {"cuGraphExecDestroy"});
  bind(lib, a.cuGraphDestroy, n, {"cuGraphDestroy"});
  bind(lib, a.cuGetErrorString, n, {"cuGetErrorString"});
  const CUresult r = a.cuInit(0);
  if (r != 0) {
    const char* s = nullptr;
    a.cuGetErrorString(r, &s);
    throw BuildError(ErrorCode::kNoGpu, "CUDA driver found but cuInit failed: error " + std::to_string(r) + " (" + (s ? s : "?") +
                                            "); no usable GPU");
  }
  return a;  // the library stays loaded for the life of the process
}

const CudaDriverApi& cudaDriver() {
  static std::once_flag once;
  static CudaDriverApi api{};
  static std::string failure;
  static ErrorCode failureCode = ErrorCode::kNoGpu;
  std::call_once(once, [] {
    try {
      api = loadCudaDriver("libcuda.so.1");
    } catch (const BuildError& e) {
      failure = e.what();
      failureCode = e.code();
    }
  });
  if (!failure.empty()) throw BuildError(failureCode, failure);
  return api;
}

bool cudaDriverAvailable() {
  try {
    cudaDriver();
    return true;
  } catch (const BuildError&) {
    return false;
  }
}

void checkCuda(CUresult r, const char* what) {
  if (r == 0) return;
  const char* s = nullptr;
  try {
    cudaDriver().cuGetErrorString(r, &s);
  } catch (...) {
  }
  throw BuildError(ErrorCode::kInternal, std::string(what) + ": CUDA error " + std::to_string(r) + " (" + (s ? s : "unknown") + ")");
}

}  // namespace gpu
}  // namespace planforge
