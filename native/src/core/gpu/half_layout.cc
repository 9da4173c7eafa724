#include "half_layout.h"

#include <map>
#include <utility>
#include <vector>

namespace planforge {
namespace gpu {

namespace {

bool isGemm(const Node& n) { return n.opType == "MatMul" || n.opType == "FusedMatMul"; }

// A GEMM of an activation by constant 2-D weights (what the half path lowers on cuBLASLt).
bool weightGemm(const Graph& g, const Node& n) {
  if (!isGemm(n) || n.precision != "fp16" || n.inputs.size() < 2) return false;
  auto w = g.initializers.find(n.inputs[1]);
  if (w == g.initializers.end() || w->second.shape.size() != 2) return false;
  if (n.inputs.size() > 2 && !n.inputs[2].empty() && !g.isConstant(n.inputs[2])) return false;  // bias: constant
  return true;
}

bool attentionHeadSizeOk(const Graph& g, const Node& n) {
  if (n.opType != "FusedAttention" || n.precision != "fp16" || n.inputs.size() < 3) return false;
  const ValueType* t = g.typeOf(n.inputs[0]);
  const int64_t h = n.attrs.getInt("num_heads", 0);
  if (!t || !t->hasShape || t->dims.size() != 3 || t->dims[2] <= 0 || h <= 0 || t->dims[2] % h) return false;
  const int64_t d = t->dims[2] / h;
  return d == 32 || d == 64 || d == 128;
}

bool lastAxisLayerNorm(const Node& n) {
  if (n.opType != "LayerNormalization" || n.precision != "fp16") return false;
  for (size_t k = 1; k < n.outputs.size(); ++k)
    if (!n.outputs[k].empty()) return false;
  return n.attrs.getInt("axis", -1) == -1;
}

}  // namespace

HalfLayout planHalfLayout(const Graph& g, const std::set<size_t>& roundFused) {
  HalfLayout out;
  std::map<std::string, std::vector<std::pair<size_t, size_t>>> readers;  // value -> (node, input index)
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k)
      if (!g.nodes[i].inputs[k].empty()) readers[g.nodes[i].inputs[k]].push_back({i, k});
  const std::set<std::string> graphOutputs(g.outputs.begin(), g.outputs.end());

  // Candidates: producer p -> (its raw output, the folded RoundToFp16's output).
  std::map<size_t, std::pair<std::string, std::string>> cand;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!(weightGemm(g, n) || attentionHeadSizeOk(g, n) || lastAxisLayerNorm(n)) || !roundFused.count(i) || n.outputs.empty()) continue;
    const std::string& raw = n.outputs[0];
    auto r = readers.find(raw);
    if (r == readers.end() || r->second.size() != 1 || graphOutputs.count(raw)) continue;
    const Node& round = g.nodes[r->second[0].first];
    if (round.opType != "RoundToFp16" || round.outputs.size() != 1 || graphOutputs.count(round.outputs[0])) continue;
    cand[i] = {raw, round.outputs[0]};
  }
  std::map<std::string, size_t> producerOf;
  for (const auto& c : cand) producerOf[c.second.second] = c.first;

  // Drop candidates with a reader that cannot take FP16 until none is left (a residual reader
  // depends on its GEMM staying a candidate).
  for (bool changed = true; changed;) {
    changed = false;
    for (auto it = cand.begin(); it != cand.end();) {
      bool ok = true;
      // A GEMM writing FP16 adds its residual in cuBLASLt as C, which must be FP16 too.
      const Node& p = g.nodes[it->first];
      if (p.opType == "FusedMatMul" && p.inputs.size() > 3 && !p.inputs[3].empty()) {
        auto q = producerOf.find(p.inputs[3]);
        ok = q != producerOf.end() && cand.count(q->second);
      }
      auto rs = readers.find(it->second.second);
      if (rs != readers.end())
        for (const auto& use : rs->second) {
          const Node& c = g.nodes[use.first];
          const bool asA = use.second == 0 && weightGemm(g, c);
          const bool asResidual = use.second == 3 && c.opType == "FusedMatMul" && weightGemm(g, c) && cand.count(use.first);
          const bool asQkv = use.second < 3 && attentionHeadSizeOk(g, c);
          const bool asLayerNormInput = use.second == 0 && lastAxisLayerNorm(c);
          const bool shapeOnly = c.opType == "Shape" || c.opType == "Size";  // computed on the host from the shape
          ok = ok && (asA || asResidual || asQkv || asLayerNormInput || shapeOnly);
        }
      if (ok) {
        ++it;
      } else {
        it = cand.erase(it);
        changed = true;
      }
    }
  }
  for (const auto& c : cand) {
    out.values.insert(c.second.first);
    out.values.insert(c.second.second);
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!isGemm(g.nodes[i])) continue;
    bool touches = g.nodes[i].outputs.size() == 1 && out.values.count(g.nodes[i].outputs[0]);
    for (const auto& in : g.nodes[i].inputs) touches = touches || out.values.count(in);
    if (touches) out.gemms.insert(i);
  }
  return out;
}

}  // namespace gpu
}  // namespace planforge
