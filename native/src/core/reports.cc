#include "reports.h"

#include <sys/stat.h>

#include <cstdlib>

#include "json.h"

namespace planforge {

namespace {

void writeShape(JsonWriter& w, const ValueType* t) {
  if (!t || !t->hasShape) {
    w.null();
    return;
  }
  w.beginArray();
  for (size_t i = 0; i < t->dims.size(); ++i) {
    if (t->dims[i] >= 0) w.value(t->dims[i]);
    else if (i < t->dimParams.size() && !t->dimParams[i].empty()) w.value(t->dimParams[i]);
    else w.value("?");
  }
  w.endArray();
}

void writeValues(JsonWriter& w, const Graph& g, const std::vector<std::string>& names) {
  w.beginArray();
  for (const auto& n : names) {
    const ValueType* t = g.typeOf(n);
    w.beginObject().field("name", n).field("dtype", t && t->known() ? dataTypeName(t->dtype) : "unknown");
    w.key("shape");
    writeShape(w, t);
    w.endObject();
  }
  w.endArray();
}

void writeHeader(JsonWriter& w, const PlanHeader& h) {
  w.key("header").beginObject()
      .field("formatVersion", static_cast<int64_t>(h.formatVersion))
      .field("optimizerVersion", h.optimizerVersion)
      .field("sm", smName(h.targetSm))
      .field("precision", h.precision)
      .field("modelSha256", h.modelSha256)
      .field("specHash", h.specHash)
      .field("tuned", h.tuned)
      .endObject();
}

void writePasses(JsonWriter& w, const std::vector<PassStats>& passes) {
  w.key("passes").beginArray();
  for (const auto& p : passes)
    w.beginObject().field("id", p.id).field("nodesBefore", p.nodesBefore).field("nodesAfter", p.nodesAfter).field("changes", p.changes).endObject();
  w.endArray();
}

}  // namespace

namespace {

std::string modelCheckJson(const Graph& g, const ImportReport& report, const std::string& modelPath) {
  JsonWriter w;
  w.beginObject()
      .field("irVersion", g.irVersion)
      .field("opsetVersion", static_cast<int64_t>(g.opset))
      .field("producerName", g.producerName)
      .field("producerVersion", g.producerVersion)
      .field("graphName", g.name);
  w.key("inputs");
  writeValues(w, g, g.inputs);
  w.key("outputs");
  writeValues(w, g, g.outputs);
  w.field("nodeCount", report.nodeCount).field("initializerCount", report.initializerCount).field("opTypes", report.opTypes);
  w.field("supported", report.unsupportedOps.empty()).field("unsupportedOps", report.unsupportedOps);
  w.field("modelSha256", sha256File(modelPath));
  w.endObject();
  return w.str();
}

}  // namespace

namespace {

std::string streamingCheck(const std::string& modelPath, uint64_t keepTensorBytes) {
  ImportOptions opts;
  opts.requireSupportedOps = false;
  ImportReport report;
  Graph g = inspectModel(modelPath, opts, &report, keepTensorBytes);
  return modelCheckJson(g, report, modelPath);
}

}  // namespace

std::string checkModelJson(const std::string& modelPath, uint64_t keepTensorBytes) {
  // PLANFORGE_VERIFY_STREAMING_CHECK=1 (test runs): also check through the whole-file import and
  // fail with E_INTERNAL when the two verdicts differ in any byte.
  const char* verify = std::getenv("PLANFORGE_VERIFY_STREAMING_CHECK");
  if (!verify || std::string(verify) != "1") return streamingCheck(modelPath, keepTensorBytes);
  auto run = [&](bool whole, std::string* json) -> std::string {
    try {
      *json = whole ? checkModelJsonWholeFile(modelPath) : streamingCheck(modelPath, keepTensorBytes);
      return "";
    } catch (const BuildError& e) {
      return std::string(errorCodeName(e.code())) + ": " + e.what();
    }
  };
  std::string streamed, whole;
  const std::string streamedError = run(false, &streamed);
  const std::string wholeError = run(true, &whole);
  if (streamedError != wholeError || streamed != whole)
    throw BuildError(ErrorCode::kInternal, "streaming check of " + modelPath + " differs from the whole-file import: " +
                                               (streamedError.empty() ? streamed : streamedError) + " vs " +
                                               (wholeError.empty() ? whole : wholeError));
  if (!streamedError.empty()) return streamingCheck(modelPath, keepTensorBytes);  // rethrows the (identical) error
  return streamed;
}

std::string checkModelJsonWholeFile(const std::string& modelPath) {
  ImportOptions opts;
  opts.requireSupportedOps = false;
  ImportReport report;
  Graph g = importModel(modelPath, opts, &report);
  return modelCheckJson(g, report, modelPath);
}

std::string planInfoJson(const Plan& plan, uint64_t planSize) {
  const Graph& g = plan.graph;
  JsonWriter w;
  w.beginObject();
  writeHeader(w, plan.header);
  w.field("planSize", planSize).field("nodesBefore", plan.header.nodesBefore).field("nodesAfter", plan.header.nodesAfter);
  w.field("irVersion", g.irVersion).field("opsetVersion", static_cast<int64_t>(g.opset)).field("producerName", g.producerName).field("graphName", g.name);
  w.key("inputs");
  writeValues(w, g, g.inputs);
  w.key("outputs");
  writeValues(w, g, g.outputs);
  w.key("profiles").beginObject();
  for (const auto& p : plan.profiles) {
    w.key(p.input).beginObject();
    for (const auto* part : {&p.min, &p.opt, &p.max}) {
      w.key(part == &p.min ? "min" : part == &p.opt ? "opt" : "max").beginArray();
      for (int64_t d : *part) w.value(d);
      w.endArray();
    }
    w.endObject();
  }
  w.endObject();
  w.key("layers").beginArray();
  for (const auto& n : g.nodes) {
    w.beginObject().field("name", n.name).field("op", n.opType).field("inputs", n.inputs).field("outputs", n.outputs)
        .field("precision", n.precision).field("tactic", n.tactic).field("originalNodes", n.originalNames).endObject();
  }
  w.endArray();
  uint64_t weightBytes = 0;
  for (const auto& kv : g.initializers) weightBytes += kv.second.bytes.size();
  w.field("weights", static_cast<int64_t>(g.initializers.size())).field("weightBytes", weightBytes);
  w.key("kernels").beginArray();
  for (const auto& k : plan.kernels)
    w.beginObject().field("sm", smName(k.sm)).field("name", k.name).field("size", static_cast<uint64_t>(k.image.size())).endObject();
  w.endArray();
  w.field("kernelsSummary", kernelsSummary(plan));
  w.key("calibration").beginObject().field("method", plan.calibration.method)
      .field("tensors", static_cast<int64_t>(plan.calibration.amax.size())).endObject();
  writePasses(w, plan.passes);
  w.endObject();
  return w.str();
}

std::string kernelsSummary(const Plan& plan) {
  if (plan.kernels.empty()) {
    for (const auto& p : plan.passes)
      if (p.id == "prepare_gpu" && !p.changes.empty()) return p.changes.front();
    return "no GPU kernels in this plan (its builder did not attach any)";
  }
  std::string s;
  for (const auto& k : plan.kernels)
    s += (s.empty() ? "" : "; ") + k.name + " for " + smName(k.sm) + " (" + std::to_string(k.image.size()) + " bytes)";
  return s + (plan.header.tuned ? ", autotuned tactics" : ", heuristic tactics (untuned)");
}

std::string buildSummaryJson(const BuildSummary& s) {
  JsonWriter w;
  w.beginObject();
  writeHeader(w, s.header);
  w.field("planSize", s.planSize).field("planSha256", s.planSha256).field("nodesBefore", s.nodesBefore)
      .field("nodesAfter", s.nodesAfter).field("layers", s.layers);
  writePasses(w, s.passes);
  w.endObject();
  return w.str();
}

}  // namespace planforge
