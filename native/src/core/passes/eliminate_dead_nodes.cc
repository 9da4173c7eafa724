// eliminate_dead_nodes: removes nodes none of whose outputs reach a graph output.
#include <set>

#include "pass.h"

namespace planforge {
namespace {

class EliminateDeadNodes : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    std::set<std::string> live(g.outputs.begin(), g.outputs.end());
    std::vector<bool> keep(g.nodes.size(), false);
    // Nodes are topologically sorted: one backward sweep marks everything live.
    for (size_t k = g.nodes.size(); k-- > 0;) {
      ctx.checkCancelled();
      const Node& n = g.nodes[k];
      for (const auto& o : n.outputs)
        if (!o.empty() && live.count(o)) keep[k] = true;
      if (keep[k])
        for (const auto& in : n.inputs)
          if (!in.empty()) live.insert(in);
    }
    std::vector<Node> kept;
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      if (keep[k]) kept.push_back(std::move(g.nodes[k]));
      else changes.push_back("removed " + nodeLabel(g.nodes[k]) + " (no output reaches a graph output)");
    }
    g.nodes = std::move(kept);
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("eliminate_dead_nodes", "remove nodes whose outputs are never used", 900, EliminateDeadNodes);

}  // namespace planforge
