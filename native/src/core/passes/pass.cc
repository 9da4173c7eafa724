#include "pass.h"

#include <algorithm>
#include <set>

namespace planforge {

void PassContext::checkCancelled() const {
  if (cancel && cancel->load()) throw BuildError(ErrorCode::kCancelled, "build cancelled");
}

PassRegistry& PassRegistry::instance() {
  static PassRegistry registry;
  return registry;
}

void PassRegistry::add(PassInfo info) {
  for (auto& p : passes_)
    if (p.id == info.id) {
      p = std::move(info);
      return;
    }
  passes_.push_back(std::move(info));
}

const PassInfo* PassRegistry::find(const std::string& id) const {
  for (const auto& p : passes_)
    if (p.id == id) return &p;
  return nullptr;
}

std::vector<PassInfo> PassRegistry::all() const {
  std::vector<PassInfo> out = passes_;
  std::sort(out.begin(), out.end(), [](const PassInfo& a, const PassInfo& b) {
    return a.order != b.order ? a.order < b.order : a.id < b.id;
  });
  return out;
}

std::vector<std::string> PassRegistry::defaultPipeline() const {
  std::vector<std::string> ids;
  for (const auto& p : all())
    if (p.enabledByDefault) ids.push_back(p.id);
  return ids;
}

std::vector<PassStats> runPasses(Graph& g, const std::vector<std::string>& ids, const PassContext& ctx,
                                 const std::function<void(const std::string&, size_t, size_t)>& onPass) {
  std::vector<PassStats> stats;
  for (size_t i = 0; i < ids.size(); ++i) {
    ctx.checkCancelled();
    const PassInfo* info = PassRegistry::instance().find(ids[i]);
    if (!info) throw BuildError(ErrorCode::kInternal, "unknown optimization pass '" + ids[i] + "'");
    if (onPass) onPass(ids[i], i, ids.size());
    PassStats s;
    s.id = info->id;
    s.nodesBefore = static_cast<int64_t>(g.nodes.size());
    std::unique_ptr<Pass> pass = info->create();
    pass->run(g, ctx, s.changes);
    g.topologicalSort();
    g.pruneUnusedValues();
    // Re-infer intermediates from scratch so no stale shape survives a rewrite; graph outputs
    // keep their declared types (symbolic dim names).
    std::set<std::string> keep(g.outputs.begin(), g.outputs.end());
    for (const auto& n : g.nodes)
      for (const auto& o : n.outputs)
        if (!keep.count(o)) g.types.erase(o);
    inferShapes(g);
    s.nodesAfter = static_cast<int64_t>(g.nodes.size());
    stats.push_back(std::move(s));
  }
  return stats;
}

void replaceAllUses(Graph& g, const std::string& from, const std::string& to) {
  for (auto& n : g.nodes)
    for (auto& in : n.inputs)
      if (in == from) in = to;
  for (auto& o : g.outputs)
    if (o == from) o = to;
}

std::string nodeLabel(const Node& n) { return n.opType + " '" + n.name + "'"; }

bool bypassNode(Graph& g, size_t index, size_t inputIdx, size_t outputIdx) {
  const std::string in = g.nodes[index].inputs.at(inputIdx);
  const std::string out = g.nodes[index].outputs.at(outputIdx);
  const bool outIsGraphOutput = std::find(g.outputs.begin(), g.outputs.end(), out) != g.outputs.end();
  if (!outIsGraphOutput) {
    g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(index));
    for (auto& n : g.nodes)
      for (auto& x : n.inputs)
        if (x == out) x = in;
    return true;
  }
  // The output name is part of the model's interface: keep it by renaming the producer's output.
  const bool inIsInterface = std::find(g.inputs.begin(), g.inputs.end(), in) != g.inputs.end() || g.isConstant(in) ||
                             std::find(g.outputs.begin(), g.outputs.end(), in) != g.outputs.end();
  int producer = g.producerIndex(in);
  if (inIsInterface || producer < 0) return false;
  g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(index));
  if (producer > static_cast<int>(index)) --producer;
  for (auto& o : g.nodes[static_cast<size_t>(producer)].outputs)
    if (o == in) o = out;
  for (auto& n : g.nodes)
    for (auto& x : n.inputs)
      if (x == in) x = out;
  auto t = g.types.find(in);
  if (t != g.types.end() && !g.types.count(out)) g.types[out] = t->second;
  return true;
}

}  // namespace planforge
