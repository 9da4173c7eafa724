// INT8 calibration: runs the FP32 graph over calibration inputs, observes the activations
// that INT8 layers read, and turns their statistics into per-tensor dynamic ranges (amax;
// scale = amax / 127) by one of three methods:
//  - entropy (TensorRT's IInt8EntropyCalibrator2, as NVIDIA's pytorch-quantization computes it):
//    |x| histogram with 2048 bins over [0, max|x|]; for every candidate threshold from bin 128
//    to 2048 the clipped distribution (outliers folded into the last bin) is quantized to 128
//    levels, and the threshold with the smallest KL divergence between the two wins;
//  - minmax: max |x| over all batches;
//  - percentile: the given percentile (default 99.99) of |x| from the same histogram.
//
// Calibration data layout (CalibrationConfig::dataDir):
//   DIR/<input>.npy                   one batch: one .npy per graph input, or
//   DIR/<batch>/<input>.npy           several batches: one sub-folder per batch (sorted by name).
// <input> is the graph input name with '/', '\\' and ':' replaced by '_'. A folder with
// sub-folders uses only the sub-folders.
//
// The calibration cache (TensorRT's readCalibrationCache/writeCalibrationCache) is a JSON file:
//   {"format":"planforge-calibration","version":1,"method":"entropy","percentile":99.99,
//    "batches":8,"tensors":{"x":{"amax":2.5,"scale":0.019685}, ...}}
#pragma once
#include <set>
#include <string>
#include <vector>

#include "../graph.h"
#include "../passes/pass.h"
#include "../plan/plan.h"
#include "precision.h"

namespace planforge {

constexpr int kCalibrationBins = 2048;
constexpr int kInt8QuantizedBins = 128;

// Threshold (in bin units, 128..2048) with the smallest KL divergence; amax = threshold * binWidth.
int entropyThresholdBin(const std::vector<double>& histogram);
// Smallest bin edge (in bin units, 1..bins) below which `percentile` % of the histogram mass lies.
int percentileThresholdBin(const std::vector<double>& histogram, double percentile);

// The calibration batches in dataDir (each: graph input name -> tensor file path), in order.
// Throws BuildError(kCalibration) when the folder is missing, empty or lacks an input.
std::vector<std::map<std::string, std::string>> listCalibrationBatches(const Graph& g, const std::string& dataDir);

// Observes `tensors` (values of g: graph inputs or node outputs) over every calibration batch
// and returns their amax by config.method. Throws BuildError(kCalibration) on bad data.
CalibrationTable calibrate(const Graph& g, const CalibrationConfig& config, const std::set<std::string>& tensors,
                           const PassContext& ctx, int* batchesUsed = nullptr);

// JSON cache I/O. read throws BuildError(kCalibration) on a malformed file, kIo when unreadable.
void writeCalibrationCache(const std::string& path, const CalibrationTable& table, const CalibrationConfig& config, int batches);
CalibrationTable readCalibrationCache(const std::string& path);
std::string calibrationCacheJson(const CalibrationTable& table, const CalibrationConfig& config, int batches);
CalibrationTable parseCalibrationCache(const std::string& json, const std::string& source);

}  // namespace planforge
