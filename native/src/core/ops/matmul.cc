// Gemm, MatMul (numpy semantics: 1-D promotion, batched with broadcasting) and MatMulInteger.
#include <cstring>

#include "elementwise.h"
#include "gemm_kernel.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

// ---- Gemm ----

std::vector<ValueInfo> inferGemm(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 2, 3);
  const ValueInfo& a = info(ctx, in, 0);
  const ValueInfo& b = info(ctx, in, 1);
  if (!a.hasShape || !b.hasShape) return {unknownRank(a.dtype)};
  if (a.shape.size() != 2 || b.shape.size() != 2)
    shapeError(ctx, "A and B must be 2-D, got " + shapeToString(a.shape) + " and " + shapeToString(b.shape));
  const bool tA = ctx.attrs.getInt("transA", 0) != 0, tB = ctx.attrs.getInt("transB", 0) != 0;
  const int64_t M = tA ? a.shape[1] : a.shape[0], Ka = tA ? a.shape[0] : a.shape[1];
  const int64_t Kb = tB ? b.shape[1] : b.shape[0], N = tB ? b.shape[0] : b.shape[1];
  if (Ka >= 0 && Kb >= 0 && Ka != Kb) shapeError(ctx, "inner dimensions differ: " + std::to_string(Ka) + " vs " + std::to_string(Kb));
  return {makeInfo(a.dtype, {M, N})};
}

Tensor gemm(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 2, 3);
  const Tensor& aIn = input(ctx, in, 0);
  requireFloat(ctx, aIn, "A");
  const Tensor a = toFloat32(aIn), b = toFloat32(input(ctx, in, 1));
  if (a.shape.size() != 2 || b.shape.size() != 2)
    shapeError(ctx, "A and B must be 2-D, got " + shapeToString(a.shape) + " and " + shapeToString(b.shape));
  const bool tA = ctx.attrs.getInt("transA", 0) != 0, tB = ctx.attrs.getInt("transB", 0) != 0;
  const float alpha = ctx.attrs.getFloat("alpha", 1.f), beta = ctx.attrs.getFloat("beta", 1.f);
  const int64_t M = tA ? a.shape[1] : a.shape[0], K = tA ? a.shape[0] : a.shape[1];
  const int64_t Kb = tB ? b.shape[1] : b.shape[0], N = tB ? b.shape[0] : b.shape[1];
  if (K != Kb) shapeError(ctx, "inner dimensions differ: " + std::to_string(K) + " vs " + std::to_string(Kb));
  Tensor y(DataType::kFloat, {M, N});
  float betaEff = 0.f;
  if (hasInput(in, 2) && beta != 0.f) {
    const Tensor c = toFloat32(*in[2]);
    if (broadcastShapes(ctx, y.shape, c.shape) != y.shape)
      shapeError(ctx, "C " + shapeToString(c.shape) + " does not broadcast to " + shapeToString(y.shape));
    broadcastApply<float, float, float>(y, c, y, [](float, float v) { return v; });
    betaEff = beta;
  }
  sgemm(tA, tB, M, N, K, alpha, a.data<float>(), a.shape[1], b.data<float>(), b.shape[1], betaEff, y.data<float>(), N);
  return castFromFloat32(y, aIn.dtype);
}

// ---- MatMul ----

struct MatMulShape {
  Shape out;        // final output shape
  Shape batch;      // broadcast batch dims
  int64_t M, K, N;
  bool aVec, bVec;  // 1-D operands (promoted then squeezed)
};

MatMulShape matmulShape(const NodeContext& ctx, const Shape& a, const Shape& b) {
  if (a.empty() || b.empty()) shapeError(ctx, "MatMul inputs must be at least 1-D");
  MatMulShape r;
  r.aVec = a.size() == 1;
  r.bVec = b.size() == 1;
  Shape a2 = r.aVec ? Shape{1, a[0]} : a;
  Shape b2 = r.bVec ? Shape{b[0], 1} : b;
  r.M = a2[a2.size() - 2];
  r.K = a2.back();
  const int64_t Kb = b2[b2.size() - 2];
  r.N = b2.back();
  if (r.K >= 0 && Kb >= 0 && r.K != Kb)
    shapeError(ctx, "inner dimensions differ: " + shapeToString(a) + " x " + shapeToString(b));
  if (r.K < 0) r.K = Kb;
  r.batch = broadcastShapes(ctx, Shape(a2.begin(), a2.end() - 2), Shape(b2.begin(), b2.end() - 2));
  r.out = r.batch;
  if (!r.aVec) r.out.push_back(r.M);
  if (!r.bVec) r.out.push_back(r.N);
  return r;
}

std::vector<ValueInfo> inferMatMul(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 2, 2);
  const ValueInfo& a = info(ctx, in, 0);
  const ValueInfo& b = info(ctx, in, 1);
  if (!a.hasShape || !b.hasShape) return {unknownRank(a.dtype)};
  return {makeInfo(a.dtype, matmulShape(ctx, a.shape, b.shape).out)};
}

// Calls f(batchIndex, aOffset, bOffset) for every broadcast batch (offsets in matrices).
template <typename F>
void forEachBatch(const Shape& batch, const Shape& aShape, const Shape& bShape, bool aVec, bool bVec, F f) {
  Shape aB = aVec ? Shape{} : Shape(aShape.begin(), aShape.end() - 2);
  Shape bB = bVec ? Shape{} : Shape(bShape.begin(), bShape.end() - 2);
  Shape sa = broadcastStrides(aB, batch), sb = broadcastStrides(bB, batch);
  const int64_t total = shapeNumel(batch);
  std::vector<int64_t> idx(batch.size(), 0);
  for (int64_t t = 0; t < total; ++t) {
    int64_t oa = 0, ob = 0;
    for (size_t d = 0; d < batch.size(); ++d) {
      oa += idx[d] * sa[d];
      ob += idx[d] * sb[d];
    }
    f(t, oa, ob);
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
}

template <typename T, typename Acc>
void matmulNaive(const T* a, const T* b, Acc* y, int64_t M, int64_t K, int64_t N) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      Acc s = 0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<Acc>(a[i * K + k]) * static_cast<Acc>(b[k * N + j]);
      y[i * N + j] = s;
    }
}

Tensor matmul(const NodeContext& ctx, const Tensor& aIn, const Tensor& bIn) {
  if (aIn.dtype != bIn.dtype)
    shapeError(ctx, std::string("input dtypes differ: ") + dataTypeName(aIn.dtype) + " vs " + dataTypeName(bIn.dtype));
  MatMulShape s = matmulShape(ctx, aIn.shape, bIn.shape);
  const int64_t M = s.M, K = s.K, N = s.N;
  if (isFloatType(aIn.dtype)) {
    const Tensor a = toFloat32(aIn), b = toFloat32(bIn);
    Tensor y(DataType::kFloat, s.out);
    forEachBatch(s.batch, a.shape, b.shape, s.aVec, s.bVec, [&](int64_t t, int64_t oa, int64_t ob) {
      sgemm(false, false, M, N, K, 1.f, a.data<float>() + oa * M * K, K, b.data<float>() + ob * K * N, N, 0.f,
            y.data<float>() + t * M * N, N);
    });
    return castFromFloat32(y, aIn.dtype);
  }
  Tensor y(aIn.dtype, s.out);
#define PF_MM(T)                                                                                          \
  forEachBatch(s.batch, aIn.shape, bIn.shape, s.aVec, s.bVec, [&](int64_t t, int64_t oa, int64_t ob) {    \
    matmulNaive<T, T>(aIn.data<T>() + oa * M * K, bIn.data<T>() + ob * K * N, y.data<T>() + t * M * N, M, K, N); \
  })
  PLANFORGE_DISPATCH_NUMERIC(aIn.dtype, ctx, PF_MM)
#undef PF_MM
  return y;
}

// ---- MatMulInteger ----

std::vector<ValueInfo> inferMatMulInteger(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 2, 4);
  const ValueInfo& a = info(ctx, in, 0);
  const ValueInfo& b = info(ctx, in, 1);
  if (!a.hasShape || !b.hasShape) return {unknownRank(DataType::kInt32)};
  return {makeInfo(DataType::kInt32, matmulShape(ctx, a.shape, b.shape).out)};
}

// Integer tensor widened to int32 with its zero point subtracted. The zero point is a scalar,
// or (per row of A / per column of B) a 1-D tensor along `axis` of the matrix.
Tensor centered(const NodeContext& ctx, const Tensor& x, const Tensor* zp, bool isA) {
  if (x.dtype != DataType::kUint8 && x.dtype != DataType::kInt8) shapeError(ctx, "inputs must be uint8 or int8");
  Tensor r(DataType::kInt32, x.shape);
  const int64_t n = x.numel();
  const int64_t cols = x.shape.empty() ? 1 : x.shape.back();
  const int64_t rows = x.shape.size() >= 2 ? x.shape[x.shape.size() - 2] : 1;
  std::vector<int64_t> z = zp ? zp->toInt64Vector() : std::vector<int64_t>{0};
  if (zp && zp->dtype != x.dtype) shapeError(ctx, "zero point dtype must match its input");
  const int64_t perRowOrColumn = isA ? rows : cols;
  if (z.size() != 1 && static_cast<int64_t>(z.size()) != perRowOrColumn)
    shapeError(ctx, std::string(isA ? "a_zero_point" : "b_zero_point") + " must be a scalar or have one value per " +
                        (isA ? "row" : "column"));
  for (int64_t i = 0; i < n; ++i) {
    int64_t zi = 0;
    if (z.size() == 1) zi = z[0];
    else if (isA) zi = z[static_cast<size_t>((i / cols) % rows)];
    else zi = z[static_cast<size_t>(i % cols)];
    r.data<int32_t>()[i] = static_cast<int32_t>(x.getInt64(i) - zi);
  }
  return r;
}

Tensor matmulInteger(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 2, 4);
  const Tensor& aIn = input(ctx, in, 0);
  const Tensor& bIn = input(ctx, in, 1);
  Tensor a = centered(ctx, aIn, hasInput(in, 2) ? in[2] : nullptr, true);
  Tensor b = centered(ctx, bIn, hasInput(in, 3) ? in[3] : nullptr, false);
  MatMulShape s = matmulShape(ctx, a.shape, b.shape);
  Tensor y(DataType::kInt32, s.out);
  forEachBatch(s.batch, a.shape, b.shape, s.aVec, s.bVec, [&](int64_t t, int64_t oa, int64_t ob) {
    matmulNaive<int32_t, int32_t>(a.data<int32_t>() + oa * s.M * s.K, b.data<int32_t>() + ob * s.K * s.N,
                                  y.data<int32_t>() + t * s.M * s.N, s.M, s.K, s.N);
  });
  return y;
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"Gemm", inferGemm, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{gemm(ctx, in)};
                            }});
PLANFORGE_REGISTER_OP(OpDef{"MatMul", inferMatMul, [](const NodeContext& ctx, const Inputs& in) {
                              requireInputs(ctx, in.size(), 2, 2);
                              return std::vector<Tensor>{matmul(ctx, input(ctx, in, 0), input(ctx, in, 1))};
                            }});
PLANFORGE_REGISTER_OP(OpDef{"MatMulInteger", inferMatMulInteger, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{matmulInteger(ctx, in)};
                            }});

}  // namespace ops
}  // namespace planforge
