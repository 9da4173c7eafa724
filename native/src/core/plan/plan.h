// Plan format v1 (see native/PLAN_FORMAT.md): the optimized graph, its weights and build
// metadata in one little-endian, deterministic, checksummed binary file.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "../graph.h"
#include "../passes/pass.h"

namespace planforge {

constexpr uint32_t kPlanFormatVersion = 1;

struct PlanProfile {
  std::string input;
  Shape min, opt, max;
};

struct PlanHeader {
  uint32_t formatVersion = kPlanFormatVersion;
  std::string optimizerVersion;
  int targetSm = 0;            // 80, 86, 87, 90
  std::string precision;       // "fp32" | "fp16" | "int8"
  std::string modelSha256;     // hex
  std::string specHash;        // opaque, from the build farm
  bool tuned = false;          // kernels autotuned on a real GPU (false for CPU-built plans)
  int64_t nodesBefore = 0;     // ONNX nodes in the imported model
  int64_t nodesAfter = 0;      // layers in the plan
};

// A compiled kernel image (cubin) for one SM; the kernels section is empty until GPU codegen exists.
struct KernelBlob {
  int sm = 0;
  std::string name;
  std::vector<uint8_t> image;
};

// INT8 calibration: per-tensor absolute max (dynamic range) by value name.
struct CalibrationTable {
  std::string method;  // "" when the plan has no calibration
  std::map<std::string, float> amax;
};

struct Plan {
  PlanHeader header;
  std::vector<PlanProfile> profiles;  // sorted by input name
  Graph graph;                        // layers = graph.nodes; weights = graph.initializers
  std::vector<KernelBlob> kernels;
  CalibrationTable calibration;
  std::vector<PassStats> passes;
};

// Deterministic serialization: equal plans give equal bytes.
// fileSha256 (optional) receives the hex SHA-256 of the returned bytes, computed without a second pass.
std::vector<uint8_t> serializePlan(const Plan& plan, std::string* fileSha256 = nullptr);

// Validates and decodes plan bytes; every read is bounds-checked. Throws BuildError(kPlanFormat)
// for truncated, corrupted or unsupported plans.
Plan parsePlan(const uint8_t* data, size_t size);

struct PlanLoadOptions {
  // When non-zero, a plan built for another SM fails with E_WRONG_SM (GPU execution);
  // the CPU reference run leaves it 0.
  int expectedSm = 0;
};
Plan loadPlanFile(const std::string& path, const PlanLoadOptions& options = {});
// Writes atomically (temporary file + rename) so a crash never leaves half a plan.
void writePlanFile(const std::string& path, const std::vector<uint8_t>& bytes);
// Serializes straight to the file (same bytes as serializePlan, without holding them in
// memory); returns the plan size. fileSha256 as for serializePlan.
uint64_t writePlanFile(const std::string& path, const Plan& plan, std::string* fileSha256 = nullptr);

// Runtime check of input shapes against the plan's profiles (E_PROFILE when outside).
void checkInputsAgainstProfiles(const Plan& plan, const std::map<std::string, Tensor>& inputs);

std::string smName(int sm);  // 90 -> "sm_90"
// "sm_90" / "90" -> 90; 0 when not one of the supported targets (80, 86, 87, 90).
int parseSm(const std::string& s);

}  // namespace planforge
