// GPU device detection (exported to the worker, which runs one process per GPU) and the
// plan-vs-device SM check.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../json.h"

namespace planforge {
namespace gpu {

struct DeviceInfo {
  int ordinal = 0;
  std::string name;           // "NVIDIA H100 80GB HBM3"
  int sm = 0;                 // major * 10 + minor: 80, 86, 87, 89, 90, ...
  int multiprocessors = 0;
  uint64_t totalMemory = 0;   // bytes
  int driverVersion = 0;      // cuDriverGetVersion: 13000 = CUDA 13.0
};

// Every visible device. Throws BuildError(E_NO_GPU) when libcuda is missing or sees no device.
std::vector<DeviceInfo> listDevices();
DeviceInfo deviceInfo(int ordinal);  // E_NO_GPU when the ordinal does not exist

// {"ordinal":0,"name":"...","sm":"sm_90","multiprocessors":132,"totalMemory":...,"driverVersion":"13.0"}
std::string deviceInfoJson(const DeviceInfo& d);
void writeDeviceInfo(JsonWriter& w, const DeviceInfo& d);

// Throws BuildError(E_WRONG_SM, "plan is for sm_80, this GPU is sm_90 (NAME)") when they differ.
// Takes the device SM as input so the check is testable without a GPU.
void checkPlanMatchesDevice(int planSm, int deviceSm, const std::string& deviceName = "");

}  // namespace gpu
}  // namespace planforge
