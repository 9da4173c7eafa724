// Decomposed GELU becomes one Gelu node (approximate="tanh" for the tanh form):
//   erf form:  x * 0.5 * (1 + Erf(x / sqrt(2)))  [x / 1.41421 or x * 0.70711]
//   tanh form: x * 0.5 * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))  [x^3 = Pow(x, 3) or x*x*x]
// The final product is matched in the three association orders exporters produce:
// (x * a) * 0.5, (a * 0.5) * x and (x * 0.5) * a, where a = 1 + Erf/Tanh(...).
#include "fusion_util.h"

namespace planforge {

namespace {

class FuseGelu : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    fusion::rewriteToFixedPoint(g, ctx, changes, tryFuse);
  }

 private:
  struct Match {
    std::string x;
    std::vector<size_t> nodes;
  };

  // The producer of v when it is a single-output node of type op whose output only feeds `user`.
  static int producerOp(const Graph& g, const fusion::UseMap& uses, const std::string& v, const char* op, int user) {
    const int p = g.producerIndex(v);
    if (p < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(p)], op) || g.nodes[static_cast<size_t>(p)].outputs.size() != 1) return -1;
    if (user >= 0 && uses.soleUser(v) != user) return -1;
    return p;
  }

  // For a binary node: the operand that is not a splat of `c` ("" when no operand is).
  static std::string nonSplatOperand(const Graph& g, const Node& n, double c, double tol = 1e-4) {
    if (n.inputs.size() != 2) return "";
    if (fusion::isSplat(g, n.inputs[1], c, tol) && !g.isConstant(n.inputs[0])) return n.inputs[0];
    if (fusion::isSplat(g, n.inputs[0], c, tol) && !g.isConstant(n.inputs[1])) return n.inputs[1];
    return "";
  }

  // Erf input: x / sqrt(2) or x * (1 / sqrt(2)).
  static bool matchErfArg(const Graph& g, const fusion::UseMap& uses, int erf, Match* m) {
    const std::string u = g.nodes[static_cast<size_t>(erf)].inputs[0];
    int p = producerOp(g, uses, u, "Div", erf);
    if (p >= 0) {
      const Node& d = g.nodes[static_cast<size_t>(p)];
      if (d.inputs.size() != 2 || !fusion::isSplat(g, d.inputs[1], 1.4142135623730951)) return false;
      m->x = d.inputs[0];
    } else {
      p = producerOp(g, uses, u, "Mul", erf);
      if (p < 0) return false;
      m->x = nonSplatOperand(g, g.nodes[static_cast<size_t>(p)], 0.7071067811865476);
      if (m->x.empty()) return false;
    }
    m->nodes.push_back(static_cast<size_t>(p));
    return true;
  }

  // Tanh input: sqrt(2/pi) * (x + 0.044715 * x^3).
  static bool matchTanhArg(const Graph& g, const fusion::UseMap& uses, int tanh, Match* m) {
    const int s = producerOp(g, uses, g.nodes[static_cast<size_t>(tanh)].inputs[0], "Mul", tanh);
    if (s < 0) return false;
    const std::string r = nonSplatOperand(g, g.nodes[static_cast<size_t>(s)], 0.7978845608028654);
    const int ri = r.empty() ? -1 : producerOp(g, uses, r, "Add", s);
    if (ri < 0) return false;
    const Node& add = g.nodes[static_cast<size_t>(ri)];
    if (add.inputs.size() != 2) return false;
    // One addend is x, the other 0.044715 * x^3.
    for (int k = 0; k < 2; ++k) {
      const std::string x = add.inputs[static_cast<size_t>(k)];
      const std::string q = add.inputs[static_cast<size_t>(1 - k)];
      const int qi = producerOp(g, uses, q, "Mul", ri);
      if (qi < 0) continue;
      const std::string cube = nonSplatOperand(g, g.nodes[static_cast<size_t>(qi)], 0.044715, 1e-3);
      if (cube.empty()) continue;
      std::vector<size_t> cubeNodes;
      const int pw = producerOp(g, uses, cube, "Pow", qi);
      if (pw >= 0) {
        const Node& pn = g.nodes[static_cast<size_t>(pw)];
        if (pn.inputs.size() != 2 || pn.inputs[0] != x || !fusion::isSplat(g, pn.inputs[1], 3.0, 1e-6)) continue;
        cubeNodes.push_back(static_cast<size_t>(pw));
      } else {
        const int m2 = producerOp(g, uses, cube, "Mul", qi);  // x * (x * x) in either order
        if (m2 < 0) continue;
        const Node& mn = g.nodes[static_cast<size_t>(m2)];
        const std::string other = fusion::otherInput(mn, x);
        const int m1 = other.empty() ? -1 : producerOp(g, uses, other, "Mul", m2);
        if (m1 < 0 || g.nodes[static_cast<size_t>(m1)].inputs[0] != x || g.nodes[static_cast<size_t>(m1)].inputs[1] != x) continue;
        cubeNodes = {static_cast<size_t>(m1), static_cast<size_t>(m2)};
      }
      m->x = x;
      m->nodes.insert(m->nodes.end(), cubeNodes.begin(), cubeNodes.end());
      m->nodes.push_back(static_cast<size_t>(qi));
      m->nodes.push_back(static_cast<size_t>(ri));
      m->nodes.push_back(static_cast<size_t>(s));
      return true;
    }
    return false;
  }

  // From a = 1 + f(...): the final x * a * 0.5 product; appends its nodes and returns its output.
  static std::string matchProduct(const Graph& g, const fusion::UseMap& uses, const std::string& x, const std::string& a,
                                  std::vector<size_t>* nodes) {
    const int m1 = uses.soleUser(a);
    if (m1 < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(m1)], "Mul")) return "";
    const Node& n1 = g.nodes[static_cast<size_t>(m1)];
    const std::string o1 = fusion::otherInput(n1, a);
    if (o1.empty()) return "";
    if (o1 == x || fusion::isSplat(g, o1, 0.5)) {
      const int m2 = uses.soleUser(n1.outputs[0]);
      if (m2 < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(m2)], "Mul")) return "";
      const std::string o2 = fusion::otherInput(g.nodes[static_cast<size_t>(m2)], n1.outputs[0]);
      if (!(o1 == x ? fusion::isSplat(g, o2, 0.5) : o2 == x)) return "";
      nodes->push_back(static_cast<size_t>(m1));
      nodes->push_back(static_cast<size_t>(m2));
      return g.nodes[static_cast<size_t>(m2)].outputs[0];
    }
    const int h = producerOp(g, uses, o1, "Mul", m1);  // (x * 0.5) * a
    if (h < 0 || nonSplatOperand(g, g.nodes[static_cast<size_t>(h)], 0.5) != x) return "";
    nodes->push_back(static_cast<size_t>(h));
    nodes->push_back(static_cast<size_t>(m1));
    return n1.outputs[0];
  }

  static bool tryFuse(Graph& g, const fusion::UseMap& uses, size_t fi, std::vector<std::string>& changes) {
    const Node& f = g.nodes[fi];
    const bool isErf = fusion::isOp(f, "Erf");
    if (!(isErf || fusion::isOp(f, "Tanh")) || f.inputs.size() != 1 || f.outputs.size() != 1) return false;
    Match m;
    if (!(isErf ? matchErfArg(g, uses, static_cast<int>(fi), &m) : matchTanhArg(g, uses, static_cast<int>(fi), &m))) return false;
    const ValueType* xt = g.typeOf(m.x);
    if (!xt || xt->dtype != DataType::kFloat) return false;
    m.nodes.push_back(fi);
    const int ai = uses.soleUser(f.outputs[0]);
    if (ai < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(ai)], "Add") ||
        !fusion::isSplat(g, fusion::otherInput(g.nodes[static_cast<size_t>(ai)], f.outputs[0]), 1.0))
      return false;
    m.nodes.push_back(static_cast<size_t>(ai));
    const std::string y = matchProduct(g, uses, m.x, g.nodes[static_cast<size_t>(ai)].outputs[0], &m.nodes);
    if (y.empty()) return false;

    Node gelu;
    gelu.opType = "Gelu";
    gelu.name = g.uniqueNodeName(f.name + "_gelu");
    gelu.inputs = {m.x};
    gelu.outputs = {y};
    if (!isErf) gelu.attrs.values["approximate"] = fusion::stringAttr("tanh");
    // originalNames in graph order, so error messages list the nodes as the model does.
    std::vector<size_t> ordered = m.nodes;
    std::sort(ordered.begin(), ordered.end());
    for (size_t k : ordered) fusion::appendOriginalNames(gelu, g.nodes[k]);
    changes.push_back("fused " + std::to_string(m.nodes.size()) + " nodes around " + nodeLabel(f) + " into Gelu '" + gelu.name + "'" +
                      (isErf ? "" : " (approximate=tanh)"));
    g.nodes[ordered.back()] = std::move(gelu);
    ordered.pop_back();
    fusion::eraseNodes(g, ordered);
    return true;
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("fuse_gelu", "recognize decomposed GELU (erf and tanh forms) and replace it by one Gelu node", 410, FuseGelu);

}  // namespace planforge
