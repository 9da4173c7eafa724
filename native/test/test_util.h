// Helpers for building tiny graphs in C++ tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/graph.h"
#include "core/op_registry.h"
#include "core/plan/plan.h"
#include "core/tensor.h"

namespace pftest {

using namespace planforge;

inline Node node(const std::string& op, const std::string& name, std::vector<std::string> ins, std::vector<std::string> outs) {
  Node n;
  n.opType = op;
  n.name = name;
  n.inputs = std::move(ins);
  n.outputs = std::move(outs);
  n.originalNames = {name};
  return n;
}

inline Tensor floats(Shape shape, std::vector<float> v) {
  Tensor t(DataType::kFloat, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = v[i];
  return t;
}

inline Tensor int64s(Shape shape, std::vector<int64_t> v) {
  Tensor t(DataType::kInt64, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
  return t;
}

inline ValueType type(DataType dt, Shape dims) {
  ValueType t;
  t.dtype = dt;
  t.hasShape = true;
  t.dims = dims;
  t.dimParams.assign(dims.size(), "");
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] < 0) t.dimParams[i] = "batch";
  return t;
}

inline void addInput(Graph& g, const std::string& name, Shape dims, DataType dt = DataType::kFloat) {
  g.inputs.push_back(name);
  g.types[name] = type(dt, dims);
}

inline Attribute intAttr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}

inline Attribute intsAttr(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}

inline Attribute floatAttr(float v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = v;
  return a;
}

inline Attribute stringAttr(const std::string& v) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = v;
  return a;
}

// Floats uniform in [-1, 1) from std::mt19937(seed): the same values on every platform run.
inline Tensor uniformFloats(Shape shape, uint32_t seed) {
  Tensor t(DataType::kFloat, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// A plan with an empty graph (IR 8, opset 17) for the given SM and precision: tests add the layers.
inline Plan emptyPlan(int sm, const std::string& precision) {
  Plan p;
  p.header.optimizerVersion = "test";
  p.header.targetSm = sm;
  p.header.precision = precision;
  p.graph.irVersion = 8;
  p.graph.opset = 17;
  p.graph.opsetImports[""] = 17;
  return p;
}

// Registers minimal definitions of the ops these tests use when the real kernels
// (native/src/core/ops/) do not provide them yet; never replaces a real kernel.
void ensureTestOps();

// Largest absolute difference relative to the largest |want| (NaN anywhere: infinity).
inline double maxRelErr(const Tensor& got, const Tensor& want) {
  double scale = 1e-6, err = 0;
  for (int64_t i = 0; i < want.numel(); ++i) scale = std::max(scale, std::fabs(want.getDouble(i)));
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double d = std::fabs(got.getDouble(i) - want.getDouble(i));
    if (std::isnan(d)) return INFINITY;
    err = std::max(err, d);
  }
  return err / scale;
}

}  // namespace pftest
