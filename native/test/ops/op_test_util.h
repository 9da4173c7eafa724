// Calls single kernels (run / infer) straight from the OpRegistry for the op unit tests.
#pragma once
#include <string>
#include <vector>

#include "../test_framework.h"
#include "core/op_registry.h"
#include "core/tensor.h"

namespace optest {

using namespace planforge;

struct Call {
  std::string op;
  int opset = 13;
  int numOutputs = 1;
  Attributes attrs;

  Call(std::string o, int os = 13) : op(std::move(o)), opset(os) {}
  Call& outputs(int n) { numOutputs = n; return *this; }
  Call& i(const std::string& n, int64_t v) { Attribute a; a.kind = Attribute::Kind::kInt; a.i = v; attrs.values[n] = a; return *this; }
  Call& f(const std::string& n, float v) { Attribute a; a.kind = Attribute::Kind::kFloat; a.f = v; attrs.values[n] = a; return *this; }
  Call& s(const std::string& n, const std::string& v) { Attribute a; a.kind = Attribute::Kind::kString; a.s = v; attrs.values[n] = a; return *this; }
  Call& ints(const std::string& n, std::vector<int64_t> v) { Attribute a; a.kind = Attribute::Kind::kInts; a.ints = std::move(v); attrs.values[n] = a; return *this; }
  Call& floats(const std::string& n, std::vector<float> v) { Attribute a; a.kind = Attribute::Kind::kFloats; a.floats = std::move(v); attrs.values[n] = a; return *this; }

  const OpDef& def() const {
    const OpDef* d = OpRegistry::instance().find(op);
    if (!d) PF_FAIL("no kernel for " << op);
    return *d;
  }
  // Omitted optional inputs: pass nullptr.
  std::vector<Tensor> run(const std::vector<const Tensor*>& in) const {
    NodeContext ctx{op, "n", attrs, opset, numOutputs};
    return def().run(ctx, in);
  }
  Tensor run1(const std::vector<const Tensor*>& in) const {
    std::vector<Tensor> r = run(in);
    if (r.empty()) PF_FAIL(op << " returned no outputs");
    return r[0];
  }
  std::vector<ValueInfo> infer(const std::vector<ValueInfo>& in) const {
    NodeContext ctx{op, "n", attrs, opset, numOutputs};
    return def().infer(ctx, in);
  }
};

inline Tensor F(Shape shape, std::vector<float> v) {
  Tensor t(DataType::kFloat, std::move(shape));
  if (static_cast<int64_t>(v.size()) != t.numel()) PF_FAIL("F(): " << v.size() << " values for " << shapeToString(t.shape));
  for (size_t k = 0; k < v.size(); ++k) t.data<float>()[k] = v[k];
  return t;
}

inline Tensor I64(Shape shape, std::vector<int64_t> v) {
  Tensor t(DataType::kInt64, std::move(shape));
  if (static_cast<int64_t>(v.size()) != t.numel()) PF_FAIL("I64(): " << v.size() << " values for " << shapeToString(t.shape));
  for (size_t k = 0; k < v.size(); ++k) t.data<int64_t>()[k] = v[k];
  return t;
}

inline Tensor ramp(Shape shape, float start = 0, float step = 1) {
  Tensor t(DataType::kFloat, std::move(shape));
  for (int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = start + step * static_cast<float>(k);
  return t;
}

inline ValueInfo vi(DataType t, Shape s, const Tensor* c = nullptr) {
  ValueInfo v;
  v.dtype = t;
  v.shape = std::move(s);
  v.constValue = c;
  return v;
}

inline std::string str(const std::vector<float>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t k = 0; k < v.size(); ++k) os << (k ? ", " : "") << v[k];
  os << "]";
  return os.str();
}

inline std::vector<float> values(const Tensor& t) {
  std::vector<float> v;
  for (int64_t k = 0; k < t.numel(); ++k) v.push_back(static_cast<float>(t.getDouble(k)));
  return v;
}

}  // namespace optest

// Shape and values (within tol) of a tensor.
#define CHECK_TENSOR(t, shapeExpected, valuesExpected, tol)                                                   \
  do {                                                                                                        \
    const ::planforge::Tensor& pf_t = (t);                                                                    \
    ::planforge::Shape pf_s = shapeExpected;                                                                  \
    std::vector<float> pf_v = valuesExpected;                                                                 \
    if (pf_t.shape != pf_s)                                                                                   \
      PF_FAIL("shape " << ::planforge::shapeToString(pf_t.shape) << ", expected " << ::planforge::shapeToString(pf_s)); \
    std::vector<float> pf_got = ::optest::values(pf_t);                                                       \
    if (pf_got.size() != pf_v.size()) PF_FAIL("got " << pf_got.size() << " values, expected " << pf_v.size()); \
    for (size_t pf_k = 0; pf_k < pf_v.size(); ++pf_k)                                                         \
      if (!(std::abs(pf_got[pf_k] - pf_v[pf_k]) <= (tol)))                                                    \
        PF_FAIL("values " << ::optest::str(pf_got) << ", expected " << ::optest::str(pf_v));                  \
  } while (0)
