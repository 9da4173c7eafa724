// Pattern-matching helpers shared by the fusion passes (fold_conv_batchnorm, fuse_*,
// cancel_transposes). Header-only: each pass is one file and includes what it needs.
#pragma once
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../graph.h"
#include "pass.h"

namespace planforge {
namespace fusion {

// Domain of the fused ops (planforge.FusedConv, ...); plans record it in opsetImports.
constexpr const char* kDomain = "planforge";

// Consumers of every value: node indices (one entry per use) in node order.
class UseMap {
 public:
  explicit UseMap(const Graph& g) : g_(g) {
    for (size_t i = 0; i < g.nodes.size(); ++i)
      for (const auto& in : g.nodes[i].inputs)
        if (!in.empty()) users_[in].push_back(i);
    outputs_.insert(g.outputs.begin(), g.outputs.end());
  }
  const std::vector<size_t>& users(const std::string& v) const {
    static const std::vector<size_t> none;
    auto it = users_.find(v);
    return it == users_.end() ? none : it->second;
  }
  bool isGraphOutput(const std::string& v) const { return outputs_.count(v) != 0; }
  // The value is read by exactly one node input and is not a graph output: fusing its producer
  // into that consumer loses nothing.
  bool singleUse(const std::string& v) const { return !isGraphOutput(v) && users(v).size() == 1; }
  // The only consumer when singleUse, else -1.
  int soleUser(const std::string& v) const { return singleUse(v) ? static_cast<int>(users(v)[0]) : -1; }

 private:
  const Graph& g_;
  std::map<std::string, std::vector<size_t>> users_;
  std::set<std::string> outputs_;
};

// The loop of the rewrite passes: applies rewrite(g, uses, i, changes) node by node until one
// succeeds, rebuilds the use map and starts over, until a sweep changes nothing.
template <typename Rewrite>
void rewriteToFixedPoint(Graph& g, const PassContext& ctx, std::vector<std::string>& changes, Rewrite rewrite) {
  for (bool changed = true; changed;) {
    changed = false;
    UseMap uses(g);
    for (size_t i = 0; i < g.nodes.size() && !changed; ++i) {
      ctx.checkCancelled();
      changed = rewrite(g, uses, i, changes);
    }
  }
}

inline bool isOp(const Node& n, const char* op) { return n.opType == op && (n.domain.empty() || n.domain == "ai.onnx"); }

// A float32 constant's values (empty when not a float32 initializer).
inline const Tensor* floatConst(const Graph& g, const std::string& v) {
  auto it = g.initializers.find(v);
  if (it == g.initializers.end() || it->second.dtype != DataType::kFloat) return nullptr;
  return &it->second;
}

// True when v is a constant whose every element equals `expected` within tol (a scalar or a
// broadcast splat, e.g. the 0.5 / 1.0 / sqrt(2) literals of decomposed Gelu).
inline bool isSplat(const Graph& g, const std::string& v, double expected, double tol = 1e-4) {
  auto it = g.initializers.find(v);
  if (it == g.initializers.end()) return false;
  const Tensor& t = it->second;
  if (t.numel() < 1 || (t.dtype != DataType::kFloat && t.dtype != DataType::kDouble && t.dtype != DataType::kFloat16)) return false;
  for (int64_t i = 0; i < t.numel(); ++i)
    if (std::abs(t.getDouble(i) - expected) > tol * std::max(1.0, std::abs(expected))) return false;
  return true;
}

// Value of a scalar-like float constant (numel 1).
inline bool scalarConst(const Graph& g, const std::string& v, double* out) {
  auto it = g.initializers.find(v);
  if (it == g.initializers.end() || it->second.numel() != 1) return false;
  if (it->second.dtype != DataType::kFloat && it->second.dtype != DataType::kDouble && it->second.dtype != DataType::kFloat16)
    return false;
  *out = it->second.getDouble(0);
  return true;
}

// For a binary node with inputs {a, b}: the operand that is not `v` ("" when neither/both are v).
inline std::string otherInput(const Node& n, const std::string& v) {
  if (n.inputs.size() != 2) return "";
  if (n.inputs[0] == v && n.inputs[1] != v) return n.inputs[1];
  if (n.inputs[1] == v && n.inputs[0] != v) return n.inputs[0];
  return "";
}

inline bool hasSameStaticShape(const Graph& g, const std::string& a, const std::string& b) {
  const ValueType* ta = g.typeOf(a);
  const ValueType* tb = g.typeOf(b);
  if (!ta || !tb || !ta->hasShape || !tb->hasShape || ta->dims.size() != tb->dims.size()) return false;
  for (size_t i = 0; i < ta->dims.size(); ++i) {
    if (ta->dims[i] >= 0 && ta->dims[i] == tb->dims[i]) continue;
    // Symbolic dims match when they carry the same (non-empty) name.
    if (ta->dims[i] < 0 && tb->dims[i] < 0 && !ta->dimParams[i].empty() && ta->dimParams[i] == tb->dimParams[i]) continue;
    return false;
  }
  return true;
}

// A residual Add operand r can join the layer producing `out`: same rank, and r never makes the
// sum larger than `out` (it equals out or broadcasts into it along size-1 dims). Unknown dims
// are accepted when both are unknown (batch-like dims flow from the same input); the fused
// kernel checks the actual shapes at run time.
inline bool residualFits(const Graph& g, const std::string& r, const std::string& out) {
  const ValueType* tr = g.typeOf(r);
  const ValueType* to = g.typeOf(out);
  if (!tr || !to || !tr->hasShape || !to->hasShape || tr->dims.size() != to->dims.size()) return false;
  if (tr->dtype != to->dtype) return false;
  for (size_t i = 0; i < to->dims.size(); ++i) {
    const int64_t a = to->dims[i], b = tr->dims[i];
    if (a >= 0 && b >= 0) {
      if (b != a && b != 1) return false;
    } else if (a >= 0) {
      if (a == 1) return false;  // r could be larger than 1 here and grow the sum
    } else if (b >= 0) {
      if (b != 1) return false;  // out could be 1 here and grow to b
    }
  }
  return true;
}

inline void appendOriginalNames(Node& into, const Node& from) {
  into.originalNames.insert(into.originalNames.end(), from.originalNames.begin(), from.originalNames.end());
}

inline void ensureDomain(Graph& g) {
  if (!g.opsetImports.count(kDomain)) g.opsetImports[kDomain] = 1;
}

// Removes the nodes at the given indices (any order).
inline void eraseNodes(Graph& g, std::vector<size_t> idx) {
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  for (auto it = idx.rbegin(); it != idx.rend(); ++it) g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(*it));
}

// Adds a float32 initializer under a fresh name derived from base.
inline std::string addInitializer(Graph& g, const std::string& base, Tensor t) {
  std::string name = g.uniqueValueName(base);
  ValueType vt;
  vt.dtype = t.dtype;
  vt.hasShape = true;
  vt.dims = t.shape;
  vt.dimParams.assign(t.shape.size(), "");
  g.types[name] = vt;
  g.initializers[name] = std::move(t);
  return name;
}

// ---- activations that fuse into FusedConv / FusedGemm / FusedMatMul ----

struct Activation {
  std::string name;  // "" = none; Relu, Clip, Sigmoid, HardSigmoid, HardSwish, Gelu, GeluTanh, SiLU, Tanh, LeakyRelu
  float alpha = 0, beta = 0;
  std::vector<size_t> nodes;  // nodes it replaces
  std::string output;         // value it produces
};

// Recognizes the activation applied to value v (v's consumers), if any. Handles the single-node
// activations and SiLU written as Mul(v, Sigmoid(v)).
inline bool matchActivation(const Graph& g, const UseMap& uses, const std::string& v, Activation* act) {
  if (uses.isGraphOutput(v)) return false;
  const auto& us = uses.users(v);
  if (us.size() == 2) {  // SiLU: Mul(v, Sigmoid(v)); HardSwish: Mul(v, HardSigmoid(v, 1/6, 0.5))
    size_t s = us[0], m = us[1];
    if (isOp(g.nodes[s], "Mul")) std::swap(s, m);
    const Node& sig = g.nodes[s];
    const Node& mul = g.nodes[m];
    const bool silu = isOp(sig, "Sigmoid");
    const bool hswish = isOp(sig, "HardSigmoid") && std::abs(sig.attrs.getFloat("alpha", 0.2f) - 1.f / 6.f) < 1e-6f &&
                        std::abs(sig.attrs.getFloat("beta", 0.5f) - 0.5f) < 1e-6f;
    if (s == m || !(silu || hswish) || !isOp(mul, "Mul") || sig.outputs.size() != 1 || mul.outputs.size() != 1) return false;
    if (sig.inputs.empty() || sig.inputs[0] != v) return false;
    if (otherInput(mul, v) != sig.outputs[0] || uses.soleUser(sig.outputs[0]) != static_cast<int>(m)) return false;
    act->name = silu ? "SiLU" : "HardSwish";
    act->nodes = {s, m};
    act->output = mul.outputs[0];
    return true;
  }
  if (us.size() != 1) return false;
  const Node& n = g.nodes[us[0]];
  if (n.outputs.size() != 1 || n.inputs.empty() || n.inputs[0] != v) return false;
  if (!(n.domain.empty() || n.domain == "ai.onnx")) return false;
  Activation a;
  const std::string& op = n.opType;
  if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "HardSwish") {
    a.name = op;
  } else if (op == "LeakyRelu") {
    a.name = op;
    a.alpha = n.attrs.getFloat("alpha", 0.01f);
  } else if (op == "HardSigmoid") {
    a.name = op;
    a.alpha = n.attrs.getFloat("alpha", 0.2f);
    a.beta = n.attrs.getFloat("beta", 0.5f);
  } else if (op == "Gelu") {
    const std::string approx = n.attrs.getString("approximate", "none");
    if (approx != "none" && approx != "tanh") return false;
    a.name = approx == "tanh" ? "GeluTanh" : "Gelu";
  } else if (op == "Clip") {
    // Opset < 11: min/max attributes; later: optional constant inputs.
    a.name = op;
    a.alpha = n.attrs.getFloat("min", -INFINITY);
    a.beta = n.attrs.getFloat("max", INFINITY);
    double d;
    if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
      if (!scalarConst(g, n.inputs[1], &d)) return false;
      a.alpha = static_cast<float>(d);
    }
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      if (!scalarConst(g, n.inputs[2], &d)) return false;
      a.beta = static_cast<float>(d);
    }
  } else {
    return false;
  }
  a.nodes = {us[0]};
  a.output = n.outputs[0];
  *act = a;
  return true;
}

inline Attribute stringAttr(const std::string& s) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = s;
  return a;
}
inline Attribute floatAttr(float f) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = f;
  return a;
}
inline Attribute intAttr(int64_t i) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = i;
  return a;
}

inline void setActivationAttrs(Node& n, const Activation& act) {
  n.attrs.values["activation"] = stringAttr(act.name);
  if (act.name == "Clip" || act.name == "LeakyRelu" || act.name == "HardSigmoid") {
    n.attrs.values["activation_alpha"] = floatAttr(act.alpha);
    n.attrs.values["activation_beta"] = floatAttr(act.beta);
  }
}

}  // namespace fusion
}  // namespace planforge

namespace planforge {
namespace fusion {
// "Conv 'a' + BatchNormalization 'b'" for change logs.
inline std::string nodeLabelPair(const Node& a, const Node& b) { return nodeLabel(a) + " + " + nodeLabel(b); }
inline std::string nodeLabels(const Graph& g, const std::vector<size_t>& idx) {
  std::string s;
  for (size_t i : idx) s += (s.empty() ? "" : " + ") + nodeLabel(g.nodes[i]);
  return s;
}
}  // namespace fusion
}  // namespace planforge

namespace planforge {
namespace fusion {

// The element-wise tail that follows a Conv / Gemm / MatMul output `v`:
//   v -> [Add(const bias)] -> [Add(residual of the same shape)] -> [activation]
struct Epilogue {
  std::string bias;           // constant operand of the bias Add ("" when none)
  std::string residual;       // other operand of the residual Add ("" when none)
  Activation act;             // act.name "" when none
  std::vector<size_t> nodes;  // the nodes it replaces, in chain order
  std::string output;         // the value the chain produces (v when nothing matched)
};

// `biasOk(constName)` decides whether a constant Add operand is a bias of this layer.
template <typename BiasOk>
Epilogue matchEpilogue(const Graph& g, const UseMap& uses, const std::string& v, bool allowBias, BiasOk biasOk) {
  Epilogue e;
  e.output = v;
  auto soleAdd = [&](const std::string& x) -> int {
    const int u = uses.soleUser(x);
    if (u < 0) return -1;
    const Node& n = g.nodes[static_cast<size_t>(u)];
    // Sum of two tensors is an Add (old exporters write residuals as Sum).
    if (!(isOp(n, "Add") || (isOp(n, "Sum") && n.inputs.size() == 2)) || n.outputs.size() != 1 || otherInput(n, x).empty()) return -1;
    return u;
  };
  int a = soleAdd(e.output);
  if (allowBias && a >= 0) {
    const std::string other = otherInput(g.nodes[static_cast<size_t>(a)], e.output);
    if (g.isConstant(other) && biasOk(other)) {
      e.bias = other;
      e.nodes.push_back(static_cast<size_t>(a));
      e.output = g.nodes[static_cast<size_t>(a)].outputs[0];
      a = soleAdd(e.output);
    }
  }
  if (a >= 0) {
    const Node& add = g.nodes[static_cast<size_t>(a)];
    const std::string other = otherInput(add, e.output);
    if (!g.isConstant(other) && residualFits(g, other, e.output)) {
      e.residual = other;
      e.nodes.push_back(static_cast<size_t>(a));
      e.output = add.outputs[0];
    }
  }
  Activation act;
  if (matchActivation(g, uses, e.output, &act)) {
    e.act = act;
    e.nodes.insert(e.nodes.end(), act.nodes.begin(), act.nodes.end());
    e.output = act.output;
  }
  return e;
}

// Float32 values of a constant broadcast along one axis: true when t has `count` elements laid out
// along `axis` of an output of rank `rank` (shapes [C], [C,1,1], [1,C,1,1] for axis 1 of rank 4).
inline bool isPerAxisConst(const Tensor& t, int64_t count, size_t axis, size_t rank) {
  if (t.dtype != DataType::kFloat || t.numel() != count || t.shape.size() > rank) return false;
  const size_t offset = rank - t.shape.size();  // numpy aligns trailing dims
  for (size_t d = 0; d < t.shape.size(); ++d) {
    const size_t outAxis = d + offset;
    if (outAxis == axis) { if (t.shape[d] != count) return false; }
    else if (t.shape[d] != 1) return false;
  }
  return count == 1 || axis >= offset;
}

}  // namespace fusion
}  // namespace planforge
