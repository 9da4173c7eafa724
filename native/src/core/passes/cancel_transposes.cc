// Transpose(perm2) of Transpose(perm1) reads the first one's input with the composed permutation
// perm[i] = perm1[perm2[i]]; when that is the identity, both disappear. A lone Transpose with an
// identity permutation is removed too. The first Transpose stays when something else reads it.
#include <numeric>

#include "fusion_util.h"

namespace planforge {

namespace {

// The permutation of a Transpose (default: reversed axes); empty when the rank is unknown.
std::vector<int64_t> permOf(const Graph& g, const Node& n) {
  if (n.attrs.has("perm")) return n.attrs.getInts("perm");
  const ValueType* t = g.typeOf(n.inputs[0]);
  if (!t || !t->hasShape) return {};
  std::vector<int64_t> p(t->dims.size());
  std::iota(p.rbegin(), p.rend(), 0);
  return p;
}

bool isIdentityPerm(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

bool isTranspose(const Node& n) { return fusion::isOp(n, "Transpose") && n.inputs.size() == 1 && n.outputs.size() == 1; }

class CancelTransposes : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t i = 0; i < g.nodes.size() && !changed; ++i) {
        ctx.checkCancelled();
        changed = tryCancel(g, i, changes);
      }
    }
  }

 private:
  static bool tryCancel(Graph& g, size_t i, std::vector<std::string>& changes) {
    if (!isTranspose(g.nodes[i])) return false;
    std::vector<int64_t> p2 = permOf(g, g.nodes[i]);
    if (p2.empty()) return false;
    const int pi = g.producerIndex(g.nodes[i].inputs[0]);
    if (pi < 0 || !isTranspose(g.nodes[static_cast<size_t>(pi)])) {
      if (!isIdentityPerm(p2)) return false;
      const std::string label = nodeLabel(g.nodes[i]);
      if (!bypassNode(g, i)) return false;
      changes.push_back("removed " + label + " (identity permutation)");
      return true;
    }
    const Node t1 = g.nodes[static_cast<size_t>(pi)];
    const std::vector<int64_t> p1 = permOf(g, t1);
    if (p1.size() != p2.size()) return false;
    std::vector<int64_t> q(p2.size());
    for (size_t k = 0; k < p2.size(); ++k) {
      if (p2[k] < 0 || p2[k] >= static_cast<int64_t>(p1.size())) return false;
      q[k] = p1[static_cast<size_t>(p2[k])];
    }
    Node& t2 = g.nodes[i];
    const std::string label = nodeLabel(t1) + " + " + nodeLabel(t2);
    t2.inputs[0] = t1.inputs[0];
    std::vector<std::string> names = t1.originalNames;
    names.insert(names.end(), t2.originalNames.begin(), t2.originalNames.end());
    t2.originalNames = names;
    if (isIdentityPerm(q)) {
      if (!bypassNode(g, i)) {
        // The output name is part of the interface and so is the input: keep a copy.
        g.nodes[i].opType = "Identity";
        g.nodes[i].attrs.values.erase("perm");
      }
      changes.push_back("cancelled " + label + " (permutations are inverse)");
    } else {
      Attribute a;
      a.kind = Attribute::Kind::kInts;
      a.ints = q;
      t2.attrs.values["perm"] = a;
      changes.push_back("composed " + label + " into one Transpose");
    }
    // Drop the first Transpose when nothing reads it any more.
    fusion::UseMap uses(g);
    const int t1Index = g.producerIndex(t1.outputs[0]);
    if (t1Index >= 0 && uses.users(t1.outputs[0]).empty() && !uses.isGraphOutput(t1.outputs[0]))
      fusion::eraseNodes(g, {static_cast<size_t>(t1Index)});
    return true;
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("cancel_transposes", "remove inverse Transpose pairs and compose consecutive Transposes", 300, CancelTransposes);

}  // namespace planforge
