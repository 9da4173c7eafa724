// Helpers for the fusion and precision tests: seeded tensors, constants, running a pass and
// comparing executor outputs before / after.
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/executor.h"
#include "core/passes/pass.h"
#include "test_framework.h"
#include "test_util.h"

namespace pftest {

inline Tensor seeded(Shape shape, uint32_t seed, float scale = 1.f, float offset = 0.f) {
  Tensor t(DataType::kFloat, std::move(shape));
  uint32_t s = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 1664525u + 1013904223u;
    t.data<float>()[i] = offset + scale * (static_cast<float>(s >> 8) / 16777216.f * 2.f - 1.f);
  }
  return t;
}

inline void addConst(Graph& g, const std::string& name, Tensor t) {
  g.types[name] = type(t.dtype, t.shape);
  g.initializers[name] = std::move(t);
}

inline Tensor scalar(float v) { return floats({}, {v}); }

inline double maxAbsDiff(const Tensor& a, const Tensor& b) {
  if (a.shape != b.shape) return INFINITY;
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.getDouble(i) - b.getDouble(i)));
  return m;
}

inline std::map<std::string, Tensor> seededInputs(const Graph& g, uint32_t seed) {
  std::map<std::string, Tensor> in;
  for (const auto& name : g.inputs) in[name] = seeded(g.types.at(name).dims, seed++);
  return in;
}

struct PassCheck {
  PassStats stats;
  double maxDiff = 0;
};

// Runs pass `id` on g (sorted + shape-inferred first) and compares outputs on seeded inputs.
inline PassCheck runPassAndCompare(Graph& g, const std::string& id, uint32_t seed = 7) {
  g.topologicalSort();
  inferShapes(g);
  auto inputs = seededInputs(g, seed);
  auto before = runGraph(g, inputs);
  PassContext ctx;
  PassCheck r;
  r.stats = runPasses(g, {id}, ctx).at(0);
  auto after = runGraph(g, inputs);
  for (const auto& kv : before) r.maxDiff = std::max(r.maxDiff, maxAbsDiff(kv.second, after.at(kv.first)));
  return r;
}

inline const Node* findOp(const Graph& g, const std::string& op) {
  for (const auto& n : g.nodes)
    if (n.opType == op) return &n;
  return nullptr;
}

inline std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

}  // namespace pftest
