#include "cubin.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "../tensor.h"

// The cubins are pulled in with .incbin (no generated C arrays: a 450 KB cubin as a byte-array
// literal costs seconds of compile time per SM). PLANFORGE_CUBIN_DIR comes from the Makefile,
// which also makes this object depend on the cubins.
#ifdef PLANFORGE_CUBIN_DIR
#define PF_INCBIN(sym, file)                                                                      \
  __asm__(".section .rodata\n.balign 64\n.global " #sym "\n.hidden " #sym "\n" #sym ":\n.incbin \"" \
          PLANFORGE_CUBIN_DIR "/" file "\"\n.global " #sym "_end\n.hidden " #sym "_end\n" #sym "_end:\n.previous\n")
PF_INCBIN(planforge_cubin_sm80, "sm_80.cubin");
PF_INCBIN(planforge_cubin_sm86, "sm_86.cubin");
PF_INCBIN(planforge_cubin_sm87, "sm_87.cubin");
PF_INCBIN(planforge_cubin_sm90, "sm_90.cubin");
extern "C" const uint8_t planforge_cubin_sm80[], planforge_cubin_sm80_end[];
extern "C" const uint8_t planforge_cubin_sm86[], planforge_cubin_sm86_end[];
extern "C" const uint8_t planforge_cubin_sm87[], planforge_cubin_sm87_end[];
extern "C" const uint8_t planforge_cubin_sm90[], planforge_cubin_sm90_end[];
#endif

namespace planforge {
namespace gpu {

namespace {
uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
constexpr uint16_t kEmCuda = 190;
}  // namespace

int cubinSm(const uint8_t* data, size_t size) {
  auto bad = [](const std::string& why) { throw BuildError(ErrorCode::kPlanFormat, "kernel image is not a valid cubin: " + why); };
  if (!data || size < 64) bad("shorter than an ELF64 header (" + std::to_string(size) + " bytes)");
  if (std::memcmp(data, "\x7f" "ELF", 4) != 0) bad("no ELF magic");
  if (data[4] != 2) bad("not a 64-bit ELF");
  if (data[5] != 1) bad("not little-endian");
  const uint16_t machine = rd16(data + 18);
  if (machine != kEmCuda) bad("ELF machine " + std::to_string(machine) + " is not EM_CUDA (190)");
  const uint32_t flags = rd32(data + 48);
  const int sm = static_cast<int>((flags >> 8) & 0xff);
  if (sm < 30) bad("implausible SM " + std::to_string(sm) + " in ELF flags");
  return sm;
}

std::vector<EmbeddedCubin> embeddedCubins() {
  std::vector<EmbeddedCubin> out;
#ifdef PLANFORGE_CUBIN_DIR
  auto add = [&](int sm, const uint8_t* b, const uint8_t* e) { out.push_back(EmbeddedCubin{sm, b, static_cast<size_t>(e - b)}); };
  add(80, planforge_cubin_sm80, planforge_cubin_sm80_end);
  add(86, planforge_cubin_sm86, planforge_cubin_sm86_end);
  add(87, planforge_cubin_sm87, planforge_cubin_sm87_end);
  add(90, planforge_cubin_sm90, planforge_cubin_sm90_end);
#endif
  return out;
}

const EmbeddedCubin* embeddedCubin(int sm) {
  static const std::vector<EmbeddedCubin> all = embeddedCubins();
  for (const auto& c : all)
    if (c.sm == sm) return &c;
  return nullptr;
}

void attachKernels(Plan& plan) {
  const EmbeddedCubin* c = embeddedCubin(plan.header.targetSm);
  if (!c)
    throw BuildError(ErrorCode::kInternal, "this optimizer build has no GPU kernels for " + smName(plan.header.targetSm) +
                                               " (built without nvcc?)");
  if (cubinSm(c->data, c->size) != plan.header.targetSm)
    throw BuildError(ErrorCode::kInternal, "embedded cubin for " + smName(plan.header.targetSm) + " has the wrong SM in its ELF header");
  plan.kernels.erase(std::remove_if(plan.kernels.begin(), plan.kernels.end(), [](const KernelBlob& k) { return k.name == kKernelModuleName; }),
                     plan.kernels.end());
  KernelBlob k;
  k.sm = plan.header.targetSm;
  k.name = kKernelModuleName;
  k.image.assign(c->data, c->data + c->size);
  plan.kernels.push_back(std::move(k));
}

void validatePlanKernels(const Plan& plan) {
  for (const auto& k : plan.kernels) {
    if (k.sm != plan.header.targetSm)
      throw BuildError(ErrorCode::kWrongSm, "kernel module '" + k.name + "' is for " + smName(k.sm) + " but the plan targets " +
                                                smName(plan.header.targetSm));
    const int elfSm = cubinSm(k.image.data(), k.image.size());
    if (elfSm != k.sm)
      throw BuildError(ErrorCode::kPlanFormat, "kernel module '" + k.name + "' says " + smName(k.sm) + " but its cubin is for sm_" +
                                                   std::to_string(elfSm));
  }
}

std::vector<uint8_t> kernelImageForPlan(const Plan& plan, bool* fromPlan) {
  validatePlanKernels(plan);
  for (const auto& k : plan.kernels)
    if (k.name == kKernelModuleName) {
      if (fromPlan) *fromPlan = true;
      return k.image;
    }
  const EmbeddedCubin* c = embeddedCubin(plan.header.targetSm);
  if (!c)
    throw BuildError(ErrorCode::kInternal, "the plan carries no GPU kernels and this build has none for " + smName(plan.header.targetSm));
  if (fromPlan) *fromPlan = false;
  return std::vector<uint8_t>(c->data, c->data + c->size);
}

}  // namespace gpu
}  // namespace planforge
