// GPU subcommands of planforge-opt (kept out of main.cc so the GPU backend evolves on its own):
//   planforge-opt bench PLAN [--shape NAME=1x3x224x224]... [--iterations N] [--warmup N] [--no-graph]
//                       [--device-ordinal N] [--profile-layers] [--autotune] [--timing-cache FILE] [--cublaslt | --cublaslt-f16] [--json]
//   planforge-opt verify PLAN --input NAME=FILE.npy|FILE.pb... [--expected NAME=FILE]... [--rtol R] [--atol A] [--cublaslt | --cublaslt-f16] [--json]
//   (--cublaslt: every GEMM / convolution cuBLASLt can take runs on cuBLASLt, when the library is present;
//    --cublaslt-f16: the same, FP16 / INT8 layers with FP16 operands and FP32 accumulation)
//   planforge-opt devices [--json]
//   planforge-opt tune PLAN -o TUNED_PLAN [--shape NAME=DIMS]... [--timing-cache FILE] [--json]   (autotune on this GPU)
// main.cc dispatches with:  if (isGpuCommand(cmd)) return planforge::cli::runGpuCommand(cmd, argc, argv);
#pragma once
#include <map>
#include <string>

#include "../core/plan/plan.h"
#include "../core/tensor.h"

namespace planforge {
namespace cli {

bool isGpuCommand(const std::string& cmd);  // bench, verify, devices, tune
// Runs the command; prints the single "error E_CODE: message" line itself and returns the exit
// code (2 for usage errors, 1 for the rest).
int runGpuCommand(const std::string& cmd, int argc, char** argv);

// `run --device cpu|gpu|auto`: gpu runs on device 0 (E_NO_GPU / E_WRONG_SM when it cannot);
// auto uses the GPU when a driver is present and its SM matches the plan, else the CPU reference.
// deviceUsed (optional) receives "gpu" or "cpu".
std::map<std::string, Tensor> runPlanOnDevice(const Plan& plan, const std::map<std::string, Tensor>& inputs, const std::string& device,
                                              std::string* deviceUsed = nullptr);

}  // namespace cli
}  // namespace planforge
