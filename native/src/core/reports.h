// JSON views shared by the CLI (--json) and the Node binding: model info, plan info, build summary.
#pragma once
#include <string>

#include "builder.h"
#include "onnx_import.h"
#include "plan/plan.h"

namespace planforge {

// Imports without requiring op support; reports unsupported ops instead of failing. Streams the
// file (inspectModel): memory stays bounded by the graph's structure, not its weights.
std::string checkModelJson(const std::string& modelPath, uint64_t keepTensorBytes = kInspectKeepTensorBytes);
// The same JSON through importModel (the whole file in memory): the reference checkModelJson is
// tested against.
std::string checkModelJsonWholeFile(const std::string& modelPath);
std::string planInfoJson(const Plan& plan, uint64_t planSize);
std::string buildSummaryJson(const BuildSummary& summary);
// One line on the plan's kernels section: the attached module(s), or why there are none (an
// optimizer built without nvcc records that in its prepare_gpu statistics).
std::string kernelsSummary(const Plan& plan);

}  // namespace planforge
