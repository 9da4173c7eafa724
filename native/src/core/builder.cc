#include "builder.h"

#include <algorithm>
#include <set>

#include "gpu/cubin.h"
#include "gpu/tactics.h"
#include "sha256.h"
#include "version.h"

namespace planforge {

namespace {

void checkCancelled(const BuilderConfig& c) {
  if (c.cancel && c.cancel->load()) throw BuildError(ErrorCode::kCancelled, "build cancelled");
}

std::string inputList(const Graph& g) {
  std::string s;
  for (const auto& n : g.inputs) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

// Cross mode (no GPU at build time): heuristic tactics, header.tuned = false, and the cubin of the
// target SM in the kernels section. An optimizer built without nvcc has no cubin to attach: the
// kernels section then stays empty and the recorded statistics say why, so inspect never implies
// the plan carries kernels it does not.
PassStats prepareGpuKernels(Plan& plan) {
  PassStats s;
  s.id = "prepare_gpu";
  s.nodesBefore = s.nodesAfter = static_cast<int64_t>(plan.graph.nodes.size());
  const int sm = plan.header.targetSm;
  if (gpu::embeddedCubin(sm)) {
    gpu::prepareGpuPlan(plan);
  } else {
    for (auto& n : plan.graph.nodes) n.tactic = gpu::heuristicTactic(plan.graph, n);
    plan.header.tuned = false;
  }
  int64_t gpuLayers = 0;
  for (const auto& n : plan.graph.nodes) gpuLayers += n.tactic != gpu::kTacticReference ? 1 : 0;
  const std::string tactics = "heuristic tactics (untuned): " + std::to_string(gpuLayers) + " of " +
                              std::to_string(plan.graph.nodes.size()) + " layers have a GPU kernel, the rest run on the CPU reference";
  if (plan.kernels.empty()) {
    s.changes.push_back("no GPU kernels attached for " + smName(sm) +
                        ": this optimizer was built without nvcc, so the plan's kernels section is empty");
  } else {
    for (const auto& k : plan.kernels)
      s.changes.push_back("attached kernel module '" + k.name + "' for " + smName(k.sm) + " (" + std::to_string(k.image.size()) + " bytes)");
  }
  s.changes.push_back(tactics);
  return s;
}

}  // namespace

void validateProfiles(const Graph& g, const std::map<std::string, InputProfile>& profiles) {
  for (const auto& kv : profiles) {
    const std::string& name = kv.first;
    const InputProfile& p = kv.second;
    if (std::find(g.inputs.begin(), g.inputs.end(), name) == g.inputs.end())
      throw BuildError(ErrorCode::kProfile, "profile for unknown input '" + name + "' (the model's inputs: " + inputList(g) + ")");
    if (p.min.size() != p.opt.size() || p.opt.size() != p.max.size())
      throw BuildError(ErrorCode::kProfile, "profile for '" + name + "': min, opt and max must have the same rank (" +
                                                std::to_string(p.min.size()) + ", " + std::to_string(p.opt.size()) + ", " +
                                                std::to_string(p.max.size()) + ")");
    const ValueType* t = g.typeOf(name);
    if (t && t->hasShape && t->dims.size() != p.min.size())
      throw BuildError(ErrorCode::kProfile, "profile for '" + name + "' has rank " + std::to_string(p.min.size()) + " but the input is " +
                                                t->toString() + " (rank " + std::to_string(t->dims.size()) + ")");
    for (size_t i = 0; i < p.min.size(); ++i) {
      const std::string dim = "profile for '" + name + "' dimension " + std::to_string(i);
      if (p.min[i] < 1) throw BuildError(ErrorCode::kProfile, dim + ": sizes must be at least 1 (min is " + std::to_string(p.min[i]) + ")");
      if (!(p.min[i] <= p.opt[i] && p.opt[i] <= p.max[i]))
        throw BuildError(ErrorCode::kProfile, dim + ": need min <= opt <= max, got " + std::to_string(p.min[i]) + ", " +
                                                  std::to_string(p.opt[i]) + ", " + std::to_string(p.max[i]));
      if (t && t->hasShape && t->dims[i] >= 0 && (p.min[i] != t->dims[i] || p.max[i] != t->dims[i]))
        throw BuildError(ErrorCode::kProfile, dim + " is fixed to " + std::to_string(t->dims[i]) + " in the model (" + t->toString() +
                                                  "), the profile asks for " + std::to_string(p.min[i]) + ".." + std::to_string(p.max[i]));
    }
  }
}

namespace {

// Everything up to serialization: import, validation, passes, precision, header.
Plan preparePlan(const std::string& modelPath, const BuilderConfig& config, BuildSummary& summary,
                 const std::function<void(const std::string&, double)>& progress) {
  if (config.targetSm != 80 && config.targetSm != 86 && config.targetSm != 87 && config.targetSm != 90)
    throw BuildError(ErrorCode::kInternal, "unsupported target sm_" + std::to_string(config.targetSm) + " (expected sm_80, sm_86, sm_87 or sm_90)");
  if (!isValidPrecision(config.precision))
    throw BuildError(ErrorCode::kInternal, "unknown precision '" + config.precision + "' (expected fp32, fp16 or int8)");

  progress("import", 0);
  ImportReport report;
  ImportOptions importOptions = config.importOptions;
  importOptions.cancel = config.cancel;
  Graph g = importModel(modelPath, importOptions, &report);
  const int64_t nodesBefore = report.nodeCount;

  progress("validate", 20);
  validateProfiles(g, config.profiles);
  {
    std::set<std::string> names;
    for (const auto& n : g.nodes) names.insert(n.name);
    for (const auto& kv : config.layerPrecisions)
      if (!names.count(kv.first))
        throw BuildError(ErrorCode::kInvalidModel, "layer precision override names node '" + kv.first + "', which the model does not have");
  }

  PassContext ctx;
  ctx.cancel = config.cancel;
  std::vector<std::string> pipeline = config.passes.empty() ? PassRegistry::instance().defaultPipeline() : config.passes;
  std::vector<PassStats> stats = runPasses(g, pipeline, ctx, [&](const std::string& id, size_t i, size_t n) {
    progress("optimize:" + id, 25 + 50.0 * static_cast<double>(i) / static_cast<double>(std::max<size_t>(n, 1)));
  });

  progress("precision", 75);
  Plan plan;
  PassStats precisionStats;
  precisionStats.id = "assign_precision";
  precisionStats.nodesBefore = static_cast<int64_t>(g.nodes.size());
  PrecisionConfig pc{config.precision, config.layerPrecisions, config.calibration};
  applyPrecision(g, pc, ctx, plan.calibration, precisionStats.changes);
  precisionStats.nodesAfter = static_cast<int64_t>(g.nodes.size());
  stats.push_back(std::move(precisionStats));

  plan.header.optimizerVersion = kOptimizerVersion;
  plan.header.targetSm = config.targetSm;
  plan.header.precision = config.precision;
  plan.header.modelSha256 = config.modelSha256.empty() ? sha256File(modelPath) : config.modelSha256;
  plan.header.specHash = config.specHash;
  plan.header.tuned = false;
  plan.header.nodesBefore = nodesBefore;
  plan.header.nodesAfter = static_cast<int64_t>(g.nodes.size());
  for (const auto& kv : config.profiles) plan.profiles.push_back(PlanProfile{kv.first, kv.second.min, kv.second.opt, kv.second.max});
  plan.graph = std::move(g);

  progress("kernels", 80);
  stats.push_back(prepareGpuKernels(plan));
  plan.passes = stats;

  summary.header = plan.header;
  summary.nodesBefore = nodesBefore;
  summary.nodesAfter = plan.header.nodesAfter;
  summary.layers = static_cast<int64_t>(plan.graph.nodes.size());
  summary.passes = std::move(stats);
  return plan;
}

std::function<void(const std::string&, double)> progressOf(const BuilderConfig& config) {
  return [&config](const std::string& stage, double pct) {
    checkCancelled(config);
    if (config.progress) config.progress(stage, pct);
  };
}

}  // namespace

std::vector<uint8_t> buildPlanBytes(const std::string& modelPath, const BuilderConfig& config, BuildSummary& summary) {
  auto progress = progressOf(config);
  Plan plan = preparePlan(modelPath, config, summary, progress);
  progress("serialize", 85);
  std::vector<uint8_t> bytes = serializePlan(plan, &summary.planSha256);
  summary.planSize = bytes.size();
  return bytes;
}

BuildSummary buildPlan(const std::string& modelPath, const std::string& outputPath, const BuilderConfig& config) {
  auto progress = progressOf(config);
  BuildSummary summary;
  Plan plan = preparePlan(modelPath, config, summary, progress);
  progress("write", 85);
  summary.planSize = writePlanFile(outputPath, plan, &summary.planSha256);
  if (config.progress) config.progress("done", 100);
  return summary;
}

}  // namespace planforge
