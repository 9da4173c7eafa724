// eliminate_common_subexpressions: two nodes with the same op, attributes and inputs compute the
// same values, so the later one goes and its readers use the earlier one's outputs. Small
// constants with the same type, shape and bytes count as the same input (exporters write one
// copy per use). Exports repeat work per layer (BERT builds its attention mask with the same
// Where on per-layer copies of the same two scalars in each of its 12 layers).
// Nodes with subgraphs or a random / stateful op, and nodes writing a graph output, are kept.
#include <cstring>
#include <map>
#include <set>

#include "fusion_util.h"

namespace planforge {
namespace {

bool deterministic(const Node& n) {
  static const std::set<std::string> random{"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                                            "Bernoulli", "Dropout"};
  return !random.count(n.opType);
}

// Canonical text of a node's computation (op, domain, attributes, inputs); empty when it cannot
// be compared (graph attributes).
std::string signature(const Node& n) {
  std::string k = n.domain + "|" + n.opType + "|" + std::to_string(n.outputs.size()) + "|";
  for (const auto& in : n.inputs) k += in + ",";
  k += "|";
  for (const auto& kv : n.attrs.values) {
    const Attribute& a = kv.second;
    k += kv.first + "=" + std::to_string(static_cast<int>(a.kind)) + ":";
    switch (a.kind) {
      case Attribute::Kind::kFloat: {
        uint32_t bits = 0;
        std::memcpy(&bits, &a.f, 4);
        k += std::to_string(bits);
        break;
      }
      case Attribute::Kind::kInt: k += std::to_string(a.i); break;
      case Attribute::Kind::kString: k += std::to_string(a.s.size()) + ":" + a.s; break;
      case Attribute::Kind::kFloats:
        for (float f : a.floats) {
          uint32_t bits = 0;
          std::memcpy(&bits, &f, 4);
          k += std::to_string(bits) + ",";
        }
        break;
      case Attribute::Kind::kInts:
        for (int64_t v : a.ints) k += std::to_string(v) + ",";
        break;
      case Attribute::Kind::kStrings:
        for (const auto& s : a.strings) k += std::to_string(s.size()) + ":" + s;
        break;
      case Attribute::Kind::kTensor:
        if (!a.t) return "";
        k += std::to_string(static_cast<int>(a.t->dtype)) + "[";
        for (int64_t d : a.t->shape) k += std::to_string(d) + ",";
        k += "]" + std::string(a.t->bytes.begin(), a.t->bytes.end());
        break;
      case Attribute::Kind::kGraph: return "";
    }
    k += ";";
  }
  return k;
}

class EliminateCommonSubexpressions : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    const std::set<std::string> outputs(g.outputs.begin(), g.outputs.end());
    // Equal small constants -> one name (the first by name, so the result is deterministic).
    constexpr size_t kMaxConstantBytes = 4096;
    std::map<std::string, std::string> canonical;  // type|shape|bytes -> initializer name
    size_t merged = 0;
    for (const auto& kv : g.initializers) {
      const Tensor& t = kv.second;
      if (t.bytes.size() > kMaxConstantBytes || outputs.count(kv.first)) continue;
      std::string key = std::to_string(static_cast<int>(t.dtype)) + "[";
      for (int64_t d : t.shape) key += std::to_string(d) + ",";
      key += "]" + std::string(t.bytes.begin(), t.bytes.end());
      auto it = canonical.emplace(key, kv.first).first;
      if (it->second == kv.first) continue;
      replaceAllUses(g, kv.first, it->second);
      ++merged;
    }
    if (merged) changes.push_back("read " + std::to_string(merged) + " constant(s) from an equal one");
    std::map<std::string, size_t> first;  // signature -> node index
    std::vector<size_t> dead;
    for (size_t i = 0; i < g.nodes.size(); ++i) {  // topological order: inputs renamed before readers are seen
      ctx.checkCancelled();
      const Node& n = g.nodes[i];
      if (n.outputs.empty() || !deterministic(n)) continue;
      const std::string sig = signature(n);
      if (sig.empty()) continue;
      auto it = first.find(sig);
      if (it == first.end()) {
        first.emplace(sig, i);
        continue;
      }
      const Node& keep = g.nodes[it->second];
      bool mergeable = true;  // not a graph output, and every output it has, the kept node has too
      for (size_t k = 0; k < n.outputs.size(); ++k)
        if (!n.outputs[k].empty() && (outputs.count(n.outputs[k]) || keep.outputs[k].empty())) mergeable = false;
      if (!mergeable) continue;
      for (size_t k = 0; k < n.outputs.size(); ++k)
        if (!n.outputs[k].empty()) replaceAllUses(g, n.outputs[k], keep.outputs[k]);
      changes.push_back("removed " + nodeLabel(n) + ": same as " + nodeLabel(keep));
      dead.push_back(i);
    }
    fusion::eraseNodes(g, dead);
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("eliminate_common_subexpressions", "remove nodes that repeat another node's computation (same op, attributes, inputs)",
                        850, EliminateCommonSubexpressions);

}  // namespace planforge
