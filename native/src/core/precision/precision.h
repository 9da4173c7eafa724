// Precision assignment: labels every layer (plan precision + per-layer overrides), then lowers
// FP16 layers (fp16.h: float16 weights, RoundToFp16 reformats) and INT8 layers (int8.h: Q/DQ
// with calibrated activation ranges, per-channel int8 weights; calibrator.h: entropy / minmax /
// percentile calibration and the JSON calibration cache).
#pragma once
#include <map>
#include <string>

#include "../graph.h"
#include "../passes/pass.h"
#include "../plan/plan.h"

namespace planforge {

struct CalibrationConfig {
  bool enabled = false;
  std::string dataDir;       // folder of calibration inputs (.npy)
  std::string method = "entropy";  // entropy | minmax | percentile
  double percentile = 99.99;
  // Calibration cache (JSON, see calibrator.h): when the file exists its ranges are used and no
  // calibration runs; otherwise calibration runs and writes it. "" = no cache.
  std::string cacheFile;
};

struct PrecisionConfig {
  std::string precision = "fp32";                     // plan default: fp32 | fp16 | int8
  std::map<std::string, std::string> layerPrecisions; // original ONNX node name -> precision
  CalibrationConfig calibration;
};

bool isValidPrecision(const std::string& p);

// Checks overrides (unknown node names, bad values) and sets Node::precision on every layer
// (a fused layer takes the widest precision any of its original nodes asked for), then rewrites
// the graph for FP16 / INT8 layers. Fills `calibration` with the activation ranges INT8 layers
// use (from the cache or by calibrating). Throws BuildError(kInvalidModel / kCalibration / kIo).
void applyPrecision(Graph& g, const PrecisionConfig& config, const PassContext& ctx, CalibrationTable& calibration,
                    std::vector<std::string>& changes);

}  // namespace planforge
