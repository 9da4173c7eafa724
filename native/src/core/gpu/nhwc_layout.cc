#include "nhwc_layout.h"

#include <algorithm>
#include <map>
#include <vector>

namespace planforge {
namespace gpu {

namespace {

bool onlyFirstOutput(const Node& n) {
  for (size_t k = 1; k < n.outputs.size(); ++k)
    if (!n.outputs[k].empty()) return false;
  return true;
}

// Values the NHWC chain can carry for this set of member convolutions (greatest fixed point).
std::set<std::string> chainValues(const Graph& g, const std::set<size_t>& members, const std::set<size_t>& roundFused,
                                  const std::map<std::string, std::vector<std::pair<size_t, size_t>>>& readers,
                                  const std::map<std::string, size_t>& producer) {
  std::set<std::string> v;
  for (size_t i = 0; i < g.nodes.size(); ++i) {  // topological order: inputs are decided first
    const Node& n = g.nodes[i];
    if (n.outputs.empty() || n.outputs[0].empty()) continue;
    if (members.count(i) && roundFused.count(i)) v.insert(n.outputs[0]);
    if ((n.opType == "RoundToFp16" || nhwcPoolable(n)) && !n.inputs.empty() && v.count(n.inputs[0])) v.insert(n.outputs[0]);
  }
  for (const auto& o : g.outputs) v.erase(o);
  for (bool changed = true; changed;) {
    changed = false;
    for (auto it = v.begin(); it != v.end();) {
      bool ok = true;
      auto rs = readers.find(*it);
      if (rs != readers.end())
        for (const auto& r : rs->second) {
          const Node& c = g.nodes[r.first];
          const bool conv = members.count(r.first) && (r.second == 0 || r.second == 3);
          const bool viewOrPool = (c.opType == "RoundToFp16" || nhwcPoolable(c)) && r.second == 0 && v.count(c.outputs[0]);
          const bool gap = c.opType == "GlobalAveragePool" && r.second == 0;
          if (!(conv || viewOrPool || gap)) ok = false;
        }
      // A view / pool whose input is no longer NHWC cannot produce NHWC either.
      auto p = producer.find(*it);
      if (p != producer.end()) {
        const Node& pn = g.nodes[p->second];
        if ((pn.opType == "RoundToFp16" || pn.opType == "MaxPool") && !v.count(pn.inputs[0])) ok = false;
      }
      if (!ok) {
        it = v.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
  }
  return v;
}

}  // namespace

bool nhwcPoolable(const Node& n) {
  return n.opType == "MaxPool" && onlyFirstOutput(n) && n.attrs.getInt("storage_order", 0) == 0 && n.attrs.getInts("kernel_shape").size() == 2 &&
         n.attrs.getInts("strides", {1, 1}).size() == 2 && n.attrs.getInts("dilations", {1, 1}).size() == 2;
}

NhwcLayout planNhwcLayout(const Graph& g, const std::set<size_t>& candidates, const std::set<size_t>& roundFused) {
  std::map<std::string, std::vector<std::pair<size_t, size_t>>> readers;
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k)
      if (!g.nodes[i].inputs[k].empty()) readers[g.nodes[i].inputs[k]].emplace_back(i, k);
    for (const auto& o : g.nodes[i].outputs)
      if (!o.empty()) producer[o] = i;
  }
  // A graph input, possibly through views / roundings (the stem's reformat is paid once per run).
  auto fromGraphInput = [&](std::string name) {
    for (int hops = 0; hops < 8; ++hops) {
      if (std::find(g.inputs.begin(), g.inputs.end(), name) != g.inputs.end()) return true;
      auto p = producer.find(name);
      if (p == producer.end()) return false;
      const Node& n = g.nodes[p->second];
      if (!(n.opType == "RoundToFp16" || n.opType == "Identity" || n.opType == "Cast") || n.inputs.empty()) return false;
      name = n.inputs[0];
    }
    return false;
  };
  NhwcLayout l;
  l.convs = candidates;
  for (;;) {
    l.values = chainValues(g, l.convs, roundFused, readers, producer);
    std::set<size_t> kept;
    for (size_t c : l.convs) {
      const Node& n = g.nodes[c];
      if (!n.inputs.empty() && (l.values.count(n.inputs[0]) || fromGraphInput(n.inputs[0]))) kept.insert(c);
    }
    if (kept == l.convs) return l;
    l.convs = std::move(kept);
  }
}

}  // namespace gpu
}  // namespace planforge
