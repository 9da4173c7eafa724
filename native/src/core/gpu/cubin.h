// Kernel images: the cubins embedded in this build (one per target SM, compiled by nvcc from
// native/kernels/*.cu at build time) and validation of a cubin's ELF header, so a plan never
// carries (or a runtime never loads) a cubin for the wrong architecture.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../plan/plan.h"

namespace planforge {
namespace gpu {

// Name of the kernel module in the plan's kernels section.
constexpr const char* kKernelModuleName = "planforge_kernels";

// The SM a cubin was compiled for: (ELF e_flags >> 8) & 0xff of a 64-bit little-endian
// EM_CUDA ELF. Throws BuildError(E_PLAN_FORMAT) naming the problem when it is not a cubin.
int cubinSm(const uint8_t* data, size_t size);

struct EmbeddedCubin {
  int sm = 0;
  const uint8_t* data = nullptr;
  size_t size = 0;
};
// The cubins compiled into this binary; empty when it was built without nvcc.
std::vector<EmbeddedCubin> embeddedCubins();
// nullptr when this build has no cubin for sm.
const EmbeddedCubin* embeddedCubin(int sm);

// Puts the embedded cubin of plan.header.targetSm into plan.kernels (replacing any module of the
// same name). Throws BuildError(E_INTERNAL) when this build has none for that SM.
void attachKernels(Plan& plan);

// Checks every kernel blob: its declared SM equals the plan's target and its ELF header agrees.
// Throws BuildError(E_PLAN_FORMAT) / (E_WRONG_SM) otherwise.
void validatePlanKernels(const Plan& plan);

// The cubin to load for a plan: the plan's own module when present, else the embedded one of the
// plan's SM (plans built before kernels were attached). Throws when neither exists.
std::vector<uint8_t> kernelImageForPlan(const Plan& plan, bool* fromPlan = nullptr);

}  // namespace gpu
}  // namespace planforge
