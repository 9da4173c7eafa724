// Multi-head attention as exporters write it becomes one planforge.FusedAttention layer:
//
//   Qh = Transpose[0,2,1,3](Reshape(q, [B,Sq,H,D]))   [* c]      (q: [B, Sq, H*D])
//   Kt = Transpose[0,2,3,1](Reshape(k, [B,Skv,H,D]))  [* c]
//   Vh = Transpose[0,2,1,3](Reshape(v, [B,Skv,H,D]))
//   s  = MatMul(Qh, Kt) [* c | / c] [+ mask]
//   p  = Softmax(s, axis=-1) [-> Where(IsNaN(p), 0, p)]
//   y  = Reshape(Transpose[0,2,1,3](MatMul(p, Vh)), [B, Sq, H*D])
//
// becomes y = FusedAttention(q, k, v, mask). The scores and probabilities ([B, H, Sq, Skv], the
// largest tensors of a BERT layer) are never written to memory and the five transposes / matmuls /
// softmax become one kernel. Both the scale forms of PyTorch's SDPA export (c = d^-1/4 on Qh and Kt,
// unless fold_matmul_scale already moved them into the weights) and of the classic export
// (s / sqrt(d)) are taken. Every intermediate value must have this chain as its only user.
#include "fusion_util.h"

namespace planforge {

namespace {

class FuseAttention : public Pass {
 public:
  void run(Graph& g, const PassContext& ctx, std::vector<std::string>& changes) override {
    fusion::rewriteToFixedPoint(g, ctx, changes, tryFuse);
  }

 private:
  struct Match {
    std::vector<size_t> nodes;
    float scale = 1.f;
    int64_t heads = 0, headDim = 0;
  };

  // Producer of v when it is a single-output `op` node and v is used only by the chain.
  static int chainProducer(const Graph& g, const fusion::UseMap& uses, const std::string& v, const char* op) {
    if (!uses.singleUse(v)) return -1;
    const int p = g.producerIndex(v);
    if (p < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(p)], op) || g.nodes[static_cast<size_t>(p)].outputs.size() != 1) return -1;
    return p;
  }

  static bool hasPerm(const Node& t, const std::vector<int64_t>& perm) { return t.attrs.getInts("perm") == perm; }

  // A dim of a value: known size, or -1.
  static int64_t dim(const ValueType* t, size_t i) { return t && t->hasShape && i < t->dims.size() ? t->dims[i] : -1; }

  // One entry of a Reshape's target shape: a known value, or a dim read off a tensor at run time
  // (Unsqueeze(Gather(Shape(t), i)): the exporters' idiom for "keep batch / sequence").
  struct TargetEntry {
    int64_t value = -1;      // >= 0 when known
    int64_t shapeIndex = -1;  // i when read off a tensor's shape
  };

  static const Tensor* intConst(const Graph& g, const std::string& v) {
    auto it = g.initializers.find(v);
    return it != g.initializers.end() && (it->second.dtype == DataType::kInt64 || it->second.dtype == DataType::kInt32) ? &it->second
                                                                                                                          : nullptr;
  }

  // The entries of target (a constant or a Concat of constants and dims read off shapes).
  static bool reshapeTarget(const Graph& g, const std::string& target, std::vector<TargetEntry>* out) {
    if (const Tensor* c = intConst(g, target)) {
      for (int64_t v : c->toInt64Vector()) out->push_back({v, -1});
      return true;
    }
    const int p = g.producerIndex(target);
    if (p < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(p)], "Concat")) return false;
    for (const std::string& part : g.nodes[static_cast<size_t>(p)].inputs) {
      if (const Tensor* c = intConst(g, part)) {
        for (int64_t v : c->toInt64Vector()) out->push_back({v, -1});
        continue;
      }
      const int u = g.producerIndex(part);
      if (u < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(u)], "Unsqueeze")) return false;
      const int ga = g.producerIndex(g.nodes[static_cast<size_t>(u)].inputs[0]);
      if (ga < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(ga)], "Gather") || g.nodes[static_cast<size_t>(ga)].inputs.size() != 2) return false;
      const Tensor* idx = intConst(g, g.nodes[static_cast<size_t>(ga)].inputs[1]);
      const int sh = g.producerIndex(g.nodes[static_cast<size_t>(ga)].inputs[0]);
      if (!idx || idx->numel() != 1 || sh < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(sh)], "Shape")) return false;
      const int64_t i = idx->toInt64Vector()[0] + g.nodes[static_cast<size_t>(sh)].attrs.getInt("start", 0);
      out->push_back({-1, i});
    }
    return true;
  }

  // Reshape rs keeps the first two dims of its input x and reshapes the rest (`trailing` elements
  // per [b, s]) to (H, D) or (H*D): each of the two leading target entries is 0 (copy), the known
  // size of that dim, or that dim read off a tensor's shape (exporters build the target from
  // Shape(x)). Returns the target's trailing sizes or an empty vector.
  static std::vector<int64_t> reshapeTail(const Graph& g, const Node& rs, const ValueType* tx, size_t rank, int64_t trailing) {
    std::vector<TargetEntry> t;
    if (rs.inputs.size() != 2 || rs.attrs.getInt("allowzero", 0) != 0 || !reshapeTarget(g, rs.inputs[1], &t) || t.size() != rank)
      return {};
    for (size_t i = 0; i < 2; ++i) {
      const int64_t known = tx->dims[i];
      const bool kept = t[i].value == 0 || (t[i].value > 0 && t[i].value == known) || (t[i].value < 0 && t[i].shapeIndex == static_cast<int64_t>(i));
      if (!kept) return {};
    }
    // The trailing entries: known sizes and at most one -1 (what the input's trailing size leaves).
    std::vector<int64_t> tail;
    int64_t known = 1;
    int inferred = -1;
    for (size_t i = 2; i < rank; ++i) {
      if (t[i].value == -1 && inferred < 0) {
        inferred = static_cast<int>(tail.size());
      } else if (t[i].value <= 0) {
        return {};
      } else {
        known *= t[i].value;
      }
      tail.push_back(t[i].value);
    }
    if (inferred >= 0) {
      if (trailing <= 0 || trailing % known != 0) return {};
      tail[static_cast<size_t>(inferred)] = trailing / known;
    }
    return tail;
  }

  // Scalar Mul by a constant on v (either operand order): returns the other operand and multiplies m.scale.
  static std::string stripScale(const Graph& g, const fusion::UseMap& uses, const std::string& v, Match* m) {
    const int p = chainProducer(g, uses, v, "Mul");
    if (p < 0) return v;
    const Node& mul = g.nodes[static_cast<size_t>(p)];
    double c;
    for (size_t k = 0; k < 2 && mul.inputs.size() == 2; ++k)
      if (fusion::scalarConst(g, mul.inputs[k], &c) && !g.isConstant(mul.inputs[1 - k])) {
        m->scale *= static_cast<float>(c);
        m->nodes.push_back(static_cast<size_t>(p));
        return mul.inputs[1 - k];
      }
    return v;
  }

  // head = Transpose[perm](Reshape(x, [B, S, H, D])) with x [B, S, H*D]: returns x ("" on mismatch).
  static std::string headInput(const Graph& g, const fusion::UseMap& uses, const std::string& head, const std::vector<int64_t>& perm,
                               Match* m) {
    const int t = chainProducer(g, uses, head, "Transpose");
    if (t < 0 || !hasPerm(g.nodes[static_cast<size_t>(t)], perm)) return "";
    const std::string r4 = g.nodes[static_cast<size_t>(t)].inputs[0];
    const int r = chainProducer(g, uses, r4, "Reshape");
    if (r < 0) return "";
    const std::string x = g.nodes[static_cast<size_t>(r)].inputs[0];
    const ValueType* tx = g.typeOf(x);
    if (!tx || !tx->hasShape || tx->dims.size() != 3) return "";
    const std::vector<int64_t> hd = reshapeTail(g, g.nodes[static_cast<size_t>(r)], tx, 4, tx->dims[2]);
    if (hd.size() != 2 || tx->dims[2] != hd[0] * hd[1]) return "";
    const int64_t h = hd[0], d = hd[1];
    if (m->heads == 0) {
      m->heads = h;
      m->headDim = d;
    } else if (m->heads != h || m->headDim != d) {
      return "";
    }
    m->nodes.push_back(static_cast<size_t>(t));
    m->nodes.push_back(static_cast<size_t>(r));
    return x;
  }

  static bool tryFuse(Graph& g, const fusion::UseMap& uses, size_t si, std::vector<std::string>& changes) {
    const Node& sm = g.nodes[si];
    if (!fusion::isOp(sm, "Softmax") || sm.inputs.size() != 1 || sm.outputs.size() != 1) return false;
    const ValueType* ts = g.typeOf(sm.inputs[0]);
    if (!ts || !ts->hasShape || ts->dims.size() != 4 || ts->dtype != DataType::kFloat) return false;
    const int64_t axis = sm.attrs.getInt("axis", g.opset < 13 ? 1 : -1);
    if (axis != -1 && axis != 3) return false;
    Match m;
    m.nodes.push_back(si);

    // Backwards: [Add(mask)] <- [Mul | Div by a constant] <- MatMul(Qh, Kt).
    std::string s = sm.inputs[0], mask;
    int p = chainProducer(g, uses, s, "Add");
    if (p >= 0) {
      const Node& add = g.nodes[static_cast<size_t>(p)];
      if (add.inputs.size() != 2) return false;
      // The scores are the operand a MatMul (through an optional scale) produces.
      size_t k = 0;
      for (; k < 2; ++k) {
        const int q = g.producerIndex(add.inputs[k]);
        if (q >= 0 && (fusion::isOp(g.nodes[static_cast<size_t>(q)], "MatMul") || fusion::isOp(g.nodes[static_cast<size_t>(q)], "Mul") ||
                       fusion::isOp(g.nodes[static_cast<size_t>(q)], "Div")))
          break;
      }
      if (k == 2) return false;
      mask = add.inputs[1 - k];
      const ValueType* tm = g.typeOf(mask);
      if (!tm || !tm->hasShape || tm->dtype != DataType::kFloat || !fusion::residualFits(g, mask, add.outputs[0])) return false;
      m.nodes.push_back(static_cast<size_t>(p));
      s = add.inputs[k];
    }
    if ((p = chainProducer(g, uses, s, "Div")) >= 0) {
      double c;
      const Node& div = g.nodes[static_cast<size_t>(p)];
      if (div.inputs.size() != 2 || !fusion::scalarConst(g, div.inputs[1], &c) || c == 0) return false;
      m.scale /= static_cast<float>(c);
      m.nodes.push_back(static_cast<size_t>(p));
      s = div.inputs[0];
    } else {
      s = stripScale(g, uses, s, &m);
    }
    const int qk = chainProducer(g, uses, s, "MatMul");
    if (qk < 0 || g.nodes[static_cast<size_t>(qk)].inputs.size() != 2) return false;
    m.nodes.push_back(static_cast<size_t>(qk));
    const std::string q = headInput(g, uses, stripScale(g, uses, g.nodes[static_cast<size_t>(qk)].inputs[0], &m), {0, 2, 1, 3}, &m);
    if (q.empty()) return false;
    const std::string k = headInput(g, uses, stripScale(g, uses, g.nodes[static_cast<size_t>(qk)].inputs[1], &m), {0, 2, 3, 1}, &m);
    if (k.empty()) return false;

    // Forwards: [Where(IsNaN(p), 0, p)] -> MatMul(p, Vh) -> Transpose[0,2,1,3] -> Reshape [B, Sq, H*D].
    std::string pv = sm.outputs[0];
    bool nanToZero = false;
    if (uses.isGraphOutput(pv)) return false;
    const auto& us = uses.users(pv);
    if (us.size() == 2) {
      size_t isnan = us[0], where = us[1];
      if (fusion::isOp(g.nodes[where], "IsNaN")) std::swap(isnan, where);
      const Node& in = g.nodes[isnan];
      const Node& wh = g.nodes[where];
      if (!fusion::isOp(in, "IsNaN") || !fusion::isOp(wh, "Where") || wh.inputs.size() != 3 || in.outputs.size() != 1 ||
          wh.outputs.size() != 1 || uses.soleUser(in.outputs[0]) != static_cast<int>(where) || wh.inputs[0] != in.outputs[0] ||
          wh.inputs[2] != pv || !fusion::isSplat(g, wh.inputs[1], 0.0, 0.0))
        return false;
      nanToZero = true;
      m.nodes.push_back(isnan);
      m.nodes.push_back(where);
      pv = wh.outputs[0];
    } else if (us.size() != 1) {
      return false;
    }
    const int o = uses.soleUser(pv);
    if (o < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(o)], "MatMul") || g.nodes[static_cast<size_t>(o)].inputs.size() != 2 ||
        g.nodes[static_cast<size_t>(o)].inputs[0] != pv)
      return false;
    m.nodes.push_back(static_cast<size_t>(o));
    const std::string v = headInput(g, uses, g.nodes[static_cast<size_t>(o)].inputs[1], {0, 2, 1, 3}, &m);
    if (v.empty()) return false;
    const int t = uses.soleUser(g.nodes[static_cast<size_t>(o)].outputs[0]);
    if (t < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(t)], "Transpose") || !hasPerm(g.nodes[static_cast<size_t>(t)], {0, 2, 1, 3}))
      return false;
    m.nodes.push_back(static_cast<size_t>(t));
    const int r = uses.soleUser(g.nodes[static_cast<size_t>(t)].outputs[0]);
    if (r < 0 || !fusion::isOp(g.nodes[static_cast<size_t>(r)], "Reshape") || g.nodes[static_cast<size_t>(r)].inputs[0] != g.nodes[static_cast<size_t>(t)].outputs[0])
      return false;
    const std::string y = g.nodes[static_cast<size_t>(r)].outputs[0];
    // The merge reshape's input is [B, Sq, H, D] (the transposed product): its leading dims are q's.
    const std::vector<int64_t> tail = reshapeTail(g, g.nodes[static_cast<size_t>(r)], g.typeOf(q), 3, m.heads * m.headDim);
    if (tail.size() != 1 || tail[0] != m.heads * m.headDim) return false;
    m.nodes.push_back(static_cast<size_t>(r));

    Node fused;
    fused.opType = "FusedAttention";
    fused.domain = fusion::kDomain;
    fused.name = g.uniqueNodeName(sm.name + "_attention");
    fused.inputs = {q, k, v};
    if (!mask.empty()) fused.inputs.push_back(mask);
    fused.outputs = {y};
    fused.attrs.values["num_heads"] = fusion::intAttr(m.heads);
    if (m.scale != 1.f) fused.attrs.values["scale"] = fusion::floatAttr(m.scale);
    if (nanToZero) fused.attrs.values["nan_to_zero"] = fusion::intAttr(1);
    std::vector<size_t> ordered = m.nodes;
    std::sort(ordered.begin(), ordered.end());
    ordered.erase(std::unique(ordered.begin(), ordered.end()), ordered.end());
    if (ordered.size() != m.nodes.size()) return false;  // a node matched twice: not this pattern
    for (size_t idx : ordered) fusion::appendOriginalNames(fused, g.nodes[idx]);
    changes.push_back("fused " + std::to_string(ordered.size()) + " nodes around " + nodeLabel(sm) + " into FusedAttention '" + fused.name +
                      "' (" + std::to_string(m.heads) + " heads of " + std::to_string(m.headDim) + (mask.empty() ? "" : ", mask") +
                      (nanToZero ? ", NaN guard" : "") + ")");
    fusion::ensureDomain(g);
    // The fused node takes the last matched node's place (after every input's producer).
    g.nodes[ordered.back()] = std::move(fused);
    ordered.pop_back();
    fusion::eraseNodes(g, ordered);
    return true;
  }
};

}  // namespace

PLANFORGE_REGISTER_PASS("fuse_attention",
                        "fuse multi-head attention (head reshapes, Q.K^T, scale, mask, Softmax, P.V) into one FusedAttention layer", 460,
                        FuseAttention);

}  // namespace planforge
