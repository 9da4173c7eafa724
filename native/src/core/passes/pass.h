// Graph optimization passes: one pass per file (passes/<pass_id>.cc), registered by id with
// PLANFORGE_REGISTER_PASS. The default pipeline is every pass with enabledByDefault, sorted by
// `order` (then id), so adding a pass needs no central list edit. See native/README.md.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../graph.h"

namespace planforge {

// What one pass did; part of the plan (so it must be deterministic: no timings).
struct PassStats {
  std::string id;
  int64_t nodesBefore = 0;
  int64_t nodesAfter = 0;
  std::vector<std::string> changes;  // human-readable, one entry per rewrite
};

struct PassContext {
  const std::atomic<bool>* cancel = nullptr;
  // Constant folding does not materialize outputs larger than this unless they are no larger
  // than the inputs (keeps Expand/Tile/ConstantOfShape from bloating the plan).
  uint64_t maxFoldBytes = 16ull << 20;
  // Throws BuildError(kCancelled) when cancellation was requested; call it inside long loops.
  void checkCancelled() const;
};

class Pass {
 public:
  virtual ~Pass() = default;
  // Rewrites g in place and appends one line per rewrite to changes. The framework re-sorts,
  // prunes unused values and re-runs shape inference after each pass.
  virtual void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) = 0;
};

struct PassInfo {
  std::string id;           // file name and pipeline name, e.g. "fold_constants"
  std::string description;
  int order = 500;          // position in the default pipeline (lower runs first)
  bool enabledByDefault = true;
  std::function<std::unique_ptr<Pass>()> create;
};

class PassRegistry {
 public:
  static PassRegistry& instance();
  void add(PassInfo info);
  const PassInfo* find(const std::string& id) const;
  std::vector<PassInfo> all() const;               // sorted by order, then id
  std::vector<std::string> defaultPipeline() const;
 private:
  std::vector<PassInfo> passes_;
};

struct PassRegistrar {
  explicit PassRegistrar(PassInfo info) { PassRegistry::instance().add(std::move(info)); }
};

#define PLANFORGE_REGISTER_PASS(ID, DESCRIPTION, ORDER, CLASS)                                                       \
  static ::planforge::PassRegistrar PLANFORGE_CONCAT(planforge_pass_registrar_, __LINE__)(::planforge::PassInfo{ \
      ID, DESCRIPTION, ORDER, true, [] { return std::unique_ptr<::planforge::Pass>(new CLASS()); }})

// Runs the passes in order; unknown ids throw BuildError(kInternal). After each pass the graph
// is re-sorted, unused values are pruned and shapes are re-inferred.
std::vector<PassStats> runPasses(Graph& g, const std::vector<std::string>& ids, const PassContext& ctx,
                                 const std::function<void(const std::string& id, size_t index, size_t count)>& onPass = nullptr);

// ---- helpers shared by passes ----

// Replaces every use of value `from` (node inputs and graph outputs) by `to`.
void replaceAllUses(Graph& g, const std::string& from, const std::string& to);
// Removes node `index` whose single data input carries the same value as its output `outputIdx`:
// consumers read the input instead. Returns false (and leaves g unchanged) when the output is a
// graph output that cannot be renamed (its input is a graph input/initializer or another graph output).
bool bypassNode(Graph& g, size_t index, size_t inputIdx = 0, size_t outputIdx = 0);
// "Op 'name'" for change logs.
std::string nodeLabel(const Node& n);

}  // namespace planforge
