#include "precision.h"

#include <filesystem>
#include <set>

#include "calibrator.h"
#include "fp16.h"
#include "int8.h"

namespace planforge {

bool isValidPrecision(const std::string& p) { return p == "fp32" || p == "fp16" || p == "int8"; }

namespace {

int width(const std::string& p) { return p == "fp32" ? 3 : p == "fp16" ? 2 : 1; }

// The activation ranges INT8 layers need: from the cache when it exists, else by calibrating
// (and then written to the cache when one is configured).
CalibrationTable obtainRanges(const Graph& g, const CalibrationConfig& config, const std::set<std::string>& tensors,
                              const PassContext& ctx, std::vector<std::string>& changes) {
  std::error_code ec;
  if (!config.cacheFile.empty() && std::filesystem::exists(config.cacheFile, ec)) {
    CalibrationTable table = readCalibrationCache(config.cacheFile);
    for (const auto& t : tensors)
      if (!table.amax.count(t))
        throw BuildError(ErrorCode::kCalibration, "calibration cache '" + config.cacheFile + "' has no range for tensor '" + t +
                                                      "' (made for another model or optimizer version? delete it to recalibrate)");
    changes.push_back("calibration: " + std::to_string(tensors.size()) + " tensor ranges read from cache '" + config.cacheFile +
                      "' (method " + table.method + ")");
    return table;
  }
  if (!config.enabled)
    throw BuildError(ErrorCode::kCalibration,
                     "INT8 layers need activation ranges for " + std::to_string(tensors.size()) + " tensors (e.g. '" + *tensors.begin() +
                         "'): give calibration data (calibration.dataDir / --calib DIR) or a calibration cache");
  int batches = 0;
  CalibrationTable table = calibrate(g, config, tensors, ctx, &batches);
  changes.push_back("calibration: " + config.method + (config.method == "percentile" ? " " + std::to_string(config.percentile) : "") +
                    " over " + std::to_string(batches) + " batches, " + std::to_string(tensors.size()) + " tensors");
  if (!config.cacheFile.empty()) {
    writeCalibrationCache(config.cacheFile, table, config, batches);
    changes.push_back("calibration: cache written to '" + config.cacheFile + "'");
  }
  return table;
}

}  // namespace

void applyPrecision(Graph& g, const PrecisionConfig& config, const PassContext& ctx, CalibrationTable& calibration,
                    std::vector<std::string>& changes) {
  if (!isValidPrecision(config.precision))
    throw BuildError(ErrorCode::kInvalidModel, "unknown precision '" + config.precision + "' (expected fp32, fp16 or int8)");
  for (const auto& kv : config.layerPrecisions)
    if (!isValidPrecision(kv.second))
      throw BuildError(ErrorCode::kInvalidModel, "layer precision for '" + kv.first + "' is '" + kv.second + "' (expected fp32, fp16 or int8)");
  calibration = CalibrationTable{};

  // Override names were checked against the imported model by the builder (they may name nodes
  // that optimization removed, e.g. an Identity, which then simply have no layer).
  for (auto& n : g.nodes) {
    ctx.checkCancelled();
    std::string p = config.precision;
    bool overridden = false;
    for (const auto& orig : n.originalNames) {
      auto it = config.layerPrecisions.find(orig);
      if (it == config.layerPrecisions.end()) continue;
      if (!overridden || width(it->second) > width(p)) p = it->second;
      overridden = true;
    }
    n.precision = p;
    if (overridden) changes.push_back("layer '" + n.name + "' runs in " + p + " (override)");
  }

  // INT8: ranges for the activations INT8 layers read (calibrated on the FP32 graph as it is
  // now, after fusion: the same tensors the INT8 kernels quantize), then Q/DQ insertion.
  const std::set<std::string> tensors = int8ActivationTensors(g);
  if (!tensors.empty()) {
    CalibrationTable table = obtainRanges(g, config.calibration, tensors, ctx, changes);
    calibration.method = table.method;
    for (const auto& t : tensors) calibration.amax[t] = table.amax.at(t);
  } else if (config.calibration.enabled) {
    changes.push_back("calibration: skipped, no INT8 layer needs activation ranges");
  }
  ctx.checkCancelled();
  lowerInt8Layers(g, calibration, changes);
  ctx.checkCancelled();
  lowerFp16Layers(g, changes);
}

}  // namespace planforge
