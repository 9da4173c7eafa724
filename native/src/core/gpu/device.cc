#include "device.h"

#include "../json.h"
#include "../tensor.h"
#include "cuda_driver.h"

namespace planforge {
namespace gpu {

namespace {
constexpr int kAttrMultiprocessorCount = 16;  // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
constexpr int kAttrCcMajor = 75;              // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
constexpr int kAttrCcMinor = 76;

std::string smText(int sm) { return "sm_" + std::to_string(sm); }
}  // namespace

DeviceInfo deviceInfo(int ordinal) {
  const CudaDriverApi& cu = cudaDriver();
  int count = 0;
  checkCuda(cu.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (count == 0) throw BuildError(ErrorCode::kNoGpu, "no CUDA device: the driver is installed but sees no GPU");
  if (ordinal < 0 || ordinal >= count)
    throw BuildError(ErrorCode::kNoGpu, "no CUDA device " + std::to_string(ordinal) + " (this machine has " + std::to_string(count) + ")");
  CUdevice dev = 0;
  checkCuda(cu.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
  DeviceInfo d;
  d.ordinal = ordinal;
  char name[256] = {0};
  checkCuda(cu.cuDeviceGetName(name, sizeof(name) - 1, dev), "cuDeviceGetName");
  d.name = name;
  int major = 0, minor = 0;
  checkCuda(cu.cuDeviceGetAttribute(&major, kAttrCcMajor, dev), "cuDeviceGetAttribute(major)");
  checkCuda(cu.cuDeviceGetAttribute(&minor, kAttrCcMinor, dev), "cuDeviceGetAttribute(minor)");
  d.sm = major * 10 + minor;
  checkCuda(cu.cuDeviceGetAttribute(&d.multiprocessors, kAttrMultiprocessorCount, dev), "cuDeviceGetAttribute(SMs)");
  size_t mem = 0;
  checkCuda(cu.cuDeviceTotalMem(&mem, dev), "cuDeviceTotalMem");
  d.totalMemory = mem;
  checkCuda(cu.cuDriverGetVersion(&d.driverVersion), "cuDriverGetVersion");
  return d;
}

std::vector<DeviceInfo> listDevices() {
  const CudaDriverApi& cu = cudaDriver();
  int count = 0;
  checkCuda(cu.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (count == 0) throw BuildError(ErrorCode::kNoGpu, "no CUDA device: the driver is installed but sees no GPU");
  std::vector<DeviceInfo> out;
  for (int i = 0; i < count; ++i) out.push_back(deviceInfo(i));
  return out;
}

void writeDeviceInfo(JsonWriter& w, const DeviceInfo& d) {
  w.beginObject();
  w.field("ordinal", d.ordinal).field("name", d.name).field("sm", smText(d.sm)).field("multiprocessors", d.multiprocessors);
  w.field("totalMemory", d.totalMemory);
  w.field("driverVersion", std::to_string(d.driverVersion / 1000) + "." + std::to_string((d.driverVersion % 1000) / 10));
  w.endObject();
}

std::string deviceInfoJson(const DeviceInfo& d) {
  JsonWriter w;
  writeDeviceInfo(w, d);
  return w.str();
}

void checkPlanMatchesDevice(int planSm, int deviceSm, const std::string& deviceName) {
  if (planSm == deviceSm) return;
  throw BuildError(ErrorCode::kWrongSm, "plan is for " + smText(planSm) + ", this GPU is " + smText(deviceSm) +
                                            (deviceName.empty() ? "" : " (" + deviceName + ")") +
                                            "; build the plan for " + smText(deviceSm) + " or run it on a matching GPU");
}

}  // namespace gpu
}  // namespace planforge
