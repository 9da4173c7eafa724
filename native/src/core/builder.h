// Model -> plan: import, validate profiles, optimize, assign precision, serialize, write.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "onnx_import.h"
#include "plan/plan.h"
#include "precision/precision.h"

namespace planforge {

struct InputProfile {
  Shape min, opt, max;
};

struct BuilderConfig {
  int targetSm = 0;                                    // 80, 86, 87, 90
  std::string precision = "fp32";                      // fp32 | fp16 | int8
  std::map<std::string, InputProfile> profiles;        // by graph input name
  std::map<std::string, std::string> layerPrecisions;  // original node name -> precision
  std::string specHash;
  std::string modelSha256;                             // computed from the file when empty
  CalibrationConfig calibration;
  std::vector<std::string> passes;                     // empty: PassRegistry default pipeline
  ImportOptions importOptions;
  // Called from the building thread: stage name and overall percent (0-100, non-decreasing).
  std::function<void(const std::string& stage, double percent)> progress;
  const std::atomic<bool>* cancel = nullptr;           // set -> E_CANCELLED at the next check
};

struct BuildSummary {
  PlanHeader header;
  uint64_t planSize = 0;
  std::string planSha256;
  int64_t nodesBefore = 0;
  int64_t nodesAfter = 0;
  int64_t layers = 0;
  std::vector<PassStats> passes;
};

// Validates profiles against the model inputs (E_PROFILE with the reason).
void validateProfiles(const Graph& g, const std::map<std::string, InputProfile>& profiles);

// Builds the plan in memory (deterministic bytes).
std::vector<uint8_t> buildPlanBytes(const std::string& modelPath, const BuilderConfig& config, BuildSummary& summary);
// Builds and writes the plan to outputPath (atomically).
BuildSummary buildPlan(const std::string& modelPath, const std::string& outputPath, const BuilderConfig& config);

}  // namespace planforge
