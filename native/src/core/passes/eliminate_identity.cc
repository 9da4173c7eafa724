// eliminate_identity: removes nodes that pass their input through unchanged at inference time:
// Identity, Dropout (inference mode, mask unused), Cast to the input's own type, Reshape /
// Flatten / Squeeze / Unsqueeze / Expand whose output shape equals the (static) input shape.
#include <algorithm>

#include "pass.h"

namespace planforge {
namespace {

bool sameStaticShape(const Graph& g, const std::string& a, const std::string& b) {
  const ValueType* ta = g.typeOf(a);
  const ValueType* tb = g.typeOf(b);
  return ta && tb && ta->isStatic() && tb->isStatic() && ta->dims == tb->dims && ta->dtype == tb->dtype;
}

bool isUsed(const Graph& g, const std::string& value) {
  if (value.empty()) return false;
  if (std::find(g.outputs.begin(), g.outputs.end(), value) != g.outputs.end()) return true;
  for (const auto& n : g.nodes)
    if (std::find(n.inputs.begin(), n.inputs.end(), value) != n.inputs.end()) return true;
  return false;
}

// Why a node is a no-op, or "" when it is not.
std::string noOpReason(const Graph& g, const Node& n) {
  if (!n.domain.empty() || n.inputs.empty() || n.inputs[0].empty()) return "";
  if (n.opType == "Identity") return "identity";
  if (n.opType == "Dropout") {
    for (size_t i = 1; i < n.outputs.size(); ++i)
      if (isUsed(g, n.outputs[i])) return "";  // the mask is read: keep the node
    if (n.inputs.size() >= 3 && !n.inputs[2].empty()) {
      auto it = g.initializers.find(n.inputs[2]);
      if (it == g.initializers.end() || it->second.numel() != 1 || it->second.getInt64(0) != 0) return "";  // training_mode may be on
    }
    return "dropout at inference";
  }
  if (n.opType == "Cast") {
    const ValueType* t = g.typeOf(n.inputs[0]);
    if (t && t->known() && static_cast<int64_t>(t->dtype) == n.attrs.getInt("to", -1)) return "cast to the same type";
    return "";
  }
  if (n.opType == "Reshape" || n.opType == "Flatten" || n.opType == "Squeeze" || n.opType == "Unsqueeze" || n.opType == "Expand") {
    if (sameStaticShape(g, n.inputs[0], n.outputs[0])) return "output shape equals input shape";
  }
  return "";
}

class EliminateIdentity : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    for (size_t i = 0; i < g.nodes.size();) {
      ctx.checkCancelled();
      std::string reason = noOpReason(g, g.nodes[i]);
      if (!reason.empty()) {
        std::string label = nodeLabel(g.nodes[i]);
        if (bypassNode(g, i)) {
          changes.push_back("removed " + label + " (" + reason + ")");
          continue;
        }
      }
      ++i;
    }
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("eliminate_identity", "remove Identity, inference Dropout and no-op Cast/Reshape nodes", 100,
                        EliminateIdentity);

}  // namespace planforge
