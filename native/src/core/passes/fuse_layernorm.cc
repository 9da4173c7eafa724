// Decomposed layer normalization, as PyTorch (torch.onnx before opset 17) and PaddlePaddle
// (paddle2onnx) export it, becomes one LayerNormalization:
//   m = ReduceMean(x, axes=trailing, keepdims=1); d = Sub(x, m)
//   v = ReduceMean(Pow(d, 2) | Mul(d, d), same axes); s = Sqrt(Add(v, eps))
//   n = Div(d, s) | Mul(d, Reciprocal(s)); y = [Add([Mul(n, gamma)], beta)]
// Operand order of the commutative ops does not matter. Without gamma the scale is ones.
#include <cmath>

#include "fusion_util.h"

namespace planforge {

namespace {

// Normalized reduction axes of a ReduceMean with keepdims=1 ({} when not constant/known).
std::vector<int64_t> meanAxes(const Graph& g, const Node& n, int64_t rank) {
  if (n.attrs.getInt("keepdims", 1) == 0) return {};
  std::vector<int64_t> axes;
  if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
    auto it = g.initializers.find(n.inputs[1]);
    if (it == g.initializers.end()) return {};
    axes = it->second.toInt64Vector();
  } else {
    axes = n.attrs.getInts("axes", {});
  }
  for (auto& a : axes) {
    if (a < -rank || a >= rank) return {};
    if (a < 0) a += rank;
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

class FuseLayerNorm : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    fusion::rewriteToFixedPoint(g, ctx, changes, tryFuse);
  }

 private:
  // The single consumer node of v with the given op type, -1 otherwise.
  static int soleOp(const Graph& g, const fusion::UseMap& uses, const std::string& v, const char* op) {
    const int u = uses.soleUser(v);
    if (u < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(u)], op) || g.nodes[static_cast<size_t>(u)].outputs.size() != 1) return -1;
    return u;
  }

  // Broadcasts a per-feature constant (gamma / beta) to the normalized shape; false when it
  // would broadcast over the non-normalized axes too.
  static bool toNormalizedShape(const Tensor& c, const Shape& normalized, int64_t rank, Tensor* out) {
    if (c.dtype != DataType::kFloat || static_cast<int64_t>(c.shape.size()) > rank) return false;
    const size_t nr = normalized.size();
    const size_t offset = static_cast<size_t>(rank) - c.shape.size();
    const size_t normStart = static_cast<size_t>(rank) - nr;
    for (size_t d = 0; d < c.shape.size(); ++d) {
      const size_t od = d + offset;
      if (od < normStart) { if (c.shape[d] != 1) return false; }
      else if (c.shape[d] != 1 && c.shape[d] != normalized[od - normStart]) return false;
    }
    *out = Tensor(DataType::kFloat, normalized);
    // Strides of c over the normalized region (0 where it broadcasts).
    std::vector<int64_t> cs(nr, 0);
    int64_t stride = 1;
    for (int64_t d = static_cast<int64_t>(c.shape.size()) - 1; d >= 0; --d) {
      const size_t od = static_cast<size_t>(d) + offset;
      if (od >= normStart && c.shape[static_cast<size_t>(d)] != 1) cs[od - normStart] = stride;
      stride *= c.shape[static_cast<size_t>(d)];
    }
    const int64_t n = out->numel();
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, off = 0;
      for (int64_t d = static_cast<int64_t>(nr) - 1; d >= 0; --d) {
        off += (rem % normalized[static_cast<size_t>(d)]) * cs[static_cast<size_t>(d)];
        rem /= normalized[static_cast<size_t>(d)];
      }
      out->data<float>()[i] = c.data<float>()[off];
    }
    return true;
  }

  static bool tryFuse(Graph& g, const fusion::UseMap& uses, size_t ri, std::vector<std::string>& changes) {
    const Node& r1 = g.nodes[ri];
    if (!fusion::isOp(r1, "ReduceMean") || r1.outputs.size() != 1 || r1.inputs.empty()) return false;
    const std::string x = r1.inputs[0];
    const ValueType* xt = g.typeOf(x);
    if (!xt || !xt->hasShape || xt->dtype != DataType::kFloat || xt->dims.empty()) return false;
    const int64_t rank = static_cast<int64_t>(xt->dims.size());
    const std::vector<int64_t> axes = meanAxes(g, r1, rank);
    if (axes.empty() || axes.back() != rank - 1) return false;
    for (size_t k = 1; k < axes.size(); ++k)
      if (axes[k] != axes[k - 1] + 1) return false;
    const int64_t axis = axes.front();
    Shape normalized(xt->dims.begin() + axis, xt->dims.end());
    for (auto d : normalized)
      if (d < 0) return false;

    std::vector<size_t> chain{ri};
    // d = x - mean, computed once (read by the square and the division) or twice (one Sub each).
    const std::string m = r1.outputs[0];
    if (uses.isGraphOutput(m)) return false;
    std::vector<size_t> subs = uses.users(m);
    std::sort(subs.begin(), subs.end());
    subs.erase(std::unique(subs.begin(), subs.end()), subs.end());
    if (subs.empty() || subs.size() > 2) return false;
    std::vector<size_t> dUsers;
    for (size_t si : subs) {
      const Node& sub = g.nodes[si];
      if (!fusion::isOp(sub, "Sub") || sub.inputs.size() != 2 || sub.inputs[0] != x || sub.inputs[1] != m || sub.outputs.size() != 1) return false;
      if (uses.isGraphOutput(sub.outputs[0])) return false;
      chain.push_back(si);
      for (size_t u : uses.users(sub.outputs[0])) dUsers.push_back(u);
    }
    std::sort(dUsers.begin(), dUsers.end());
    dUsers.erase(std::unique(dUsers.begin(), dUsers.end()), dUsers.end());
    if (dUsers.size() != 2) return false;
    auto isD = [&](const std::string& v) {
      for (size_t si : subs)
        if (g.nodes[si].outputs[0] == v) return true;
      return false;
    };
    // One consumer squares d, the other divides it by the standard deviation.
    int sq = -1, dv = -1;
    std::string d;  // the difference the division reads
    for (size_t u : dUsers) {
      const Node& n = g.nodes[u];
      if (n.inputs.size() != 2) return false;
      if (fusion::isOp(n, "Pow") && isD(n.inputs[0]) && fusion::isSplat(g, n.inputs[1], 2.0, 1e-6)) {
        sq = static_cast<int>(u);
      } else if (fusion::isOp(n, "Mul") && isD(n.inputs[0]) && n.inputs[1] == n.inputs[0]) {
        sq = static_cast<int>(u);
      } else if (fusion::isOp(n, "Div") && isD(n.inputs[0])) {
        dv = static_cast<int>(u);
        d = n.inputs[0];
      } else if (fusion::isOp(n, "Mul") && (isD(n.inputs[0]) != isD(n.inputs[1]))) {
        dv = static_cast<int>(u);
        d = isD(n.inputs[0]) ? n.inputs[0] : n.inputs[1];
      }
    }
    // With two Subs, each must feed exactly one of the two consumers.
    if (subs.size() == 2 && sq >= 0 && dv >= 0 && g.nodes[static_cast<size_t>(sq)].inputs[0] == d) return false;
    if (sq < 0 || dv < 0) return false;
    chain.push_back(static_cast<size_t>(sq));
    const int r2 = soleOp(g, uses, g.nodes[static_cast<size_t>(sq)].outputs[0], "ReduceMean");
    if (r2 < 0 || g.nodes[static_cast<size_t>(r2)].inputs[0] != g.nodes[static_cast<size_t>(sq)].outputs[0]) return false;
    if (meanAxes(g, g.nodes[static_cast<size_t>(r2)], rank) != axes) return false;
    chain.push_back(static_cast<size_t>(r2));
    const int ai = soleOp(g, uses, g.nodes[static_cast<size_t>(r2)].outputs[0], "Add");
    if (ai < 0) return false;
    double eps;
    if (!fusion::scalarConst(g, fusion::otherInput(g.nodes[static_cast<size_t>(ai)], g.nodes[static_cast<size_t>(r2)].outputs[0]), &eps) ||
        !(eps >= 0))
      return false;
    chain.push_back(static_cast<size_t>(ai));
    const int qi = soleOp(g, uses, g.nodes[static_cast<size_t>(ai)].outputs[0], "Sqrt");
    if (qi < 0) return false;
    chain.push_back(static_cast<size_t>(qi));
    std::string stdv = g.nodes[static_cast<size_t>(qi)].outputs[0];
    const Node& div = g.nodes[static_cast<size_t>(dv)];
    if (fusion::isOp(div, "Div")) {
      if (div.inputs[1] != stdv || uses.soleUser(stdv) != dv) return false;
    } else {  // Mul(d, Reciprocal(std))
      const int rc = soleOp(g, uses, stdv, "Reciprocal");
      if (rc < 0 || fusion::otherInput(div, d) != g.nodes[static_cast<size_t>(rc)].outputs[0] ||
          uses.soleUser(g.nodes[static_cast<size_t>(rc)].outputs[0]) != dv)
        return false;
      chain.push_back(static_cast<size_t>(rc));
    }
    chain.push_back(static_cast<size_t>(dv));
    std::string out = div.outputs[0];

    Tensor gamma, beta;
    bool haveGamma = false, haveBeta = false;
    const int mi = soleOp(g, uses, out, "Mul");
    if (mi >= 0) {
      const std::string c = fusion::otherInput(g.nodes[static_cast<size_t>(mi)], out);
      const Tensor* t = fusion::floatConst(g, c);
      if (t && toNormalizedShape(*t, normalized, rank, &gamma)) {
        haveGamma = true;
        chain.push_back(static_cast<size_t>(mi));
        out = g.nodes[static_cast<size_t>(mi)].outputs[0];
      }
    }
    const int bi = soleOp(g, uses, out, "Add");
    if (bi >= 0) {
      const std::string c = fusion::otherInput(g.nodes[static_cast<size_t>(bi)], out);
      const Tensor* t = fusion::floatConst(g, c);
      if (t && toNormalizedShape(*t, normalized, rank, &beta)) {
        haveBeta = true;
        chain.push_back(static_cast<size_t>(bi));
        out = g.nodes[static_cast<size_t>(bi)].outputs[0];
      }
    }
    if (!haveGamma) {
      gamma = Tensor(DataType::kFloat, normalized);
      for (int64_t k = 0; k < gamma.numel(); ++k) gamma.data<float>()[k] = 1.f;
    }

    Node ln;
    ln.opType = "LayerNormalization";
    ln.name = g.uniqueNodeName(r1.name + "_layernorm");
    ln.inputs = {x, fusion::addInitializer(g, ln.name + "_scale", std::move(gamma))};
    if (haveBeta) ln.inputs.push_back(fusion::addInitializer(g, ln.name + "_bias", std::move(beta)));
    ln.outputs = {out};
    ln.attrs.values["axis"] = fusion::intAttr(axis);
    ln.attrs.values["epsilon"] = fusion::floatAttr(static_cast<float>(eps));
    for (size_t k : chain) fusion::appendOriginalNames(ln, g.nodes[k]);
    changes.push_back("fused " + std::to_string(chain.size()) + " nodes from " + nodeLabel(r1) +
                      " into LayerNormalization '" + ln.name + "' (axis " + std::to_string(axis) + ")");
    g.nodes[chain.back()] = std::move(ln);
    chain.pop_back();
    fusion::eraseNodes(g, chain);
    return true;
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("fuse_layernorm", "recognize decomposed layer normalization (PyTorch / PaddlePaddle exports)", 400,
                        FuseLayerNorm);

}  // namespace planforge
