// The shared GEMM against a naive triple loop, every transpose combination, odd sizes, threads.
#include <random>

#include "core/ops/gemm_kernel.h"
#include "op_test_util.h"

namespace {

void checkGemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, int threads) {
  std::mt19937 rng(static_cast<unsigned>(M * 131 + N * 17 + K));
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N);
  for (auto& v : A) v = u(rng);
  for (auto& v : B) v = u(rng);
  for (size_t i = 0; i < C.size(); ++i) C[i] = R[i] = u(rng);
  const int64_t lda = tA ? M : K, ldb = tB ? K : N;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(tA ? A[k * lda + i] : A[i * lda + k]) * (tB ? B[j * ldb + k] : B[k * ldb + j]);
      R[i * N + j] = static_cast<float>(0.75 * s + 0.5 * R[i * N + j]);
    }
  planforge::ops::setGemmThreads(threads);
  planforge::ops::sgemm(tA, tB, M, N, K, 0.75f, A.data(), lda, B.data(), ldb, 0.5f, C.data(), N);
  planforge::ops::setGemmThreads(0);
  for (size_t i = 0; i < C.size(); ++i)
    if (std::abs(C[i] - R[i]) > 1e-4 * (1 + std::abs(R[i])))
      PF_FAIL("tA=" << tA << " tB=" << tB << " " << M << "x" << N << "x" << K << " element " << i << ": " << C[i] << " vs " << R[i]);
}

}  // namespace

TEST(gemm_kernel_matches_naive) {
  for (int tA = 0; tA < 2; ++tA)
    for (int tB = 0; tB < 2; ++tB) {
      checkGemm(tA, tB, 1, 1, 1, 1);
      checkGemm(tA, tB, 7, 19, 5, 1);
      checkGemm(tA, tB, 37, 300, 260, 1);
      checkGemm(tA, tB, 130, 17, 513, 2);
      checkGemm(tA, tB, 5, 2100, 40, 2);
    }
}

TEST(gemm_kernel_beta_zero_ignores_nan) {
  std::vector<float> A{1, 2}, B{3, 4}, C{std::nanf(""), std::nanf(""), std::nanf(""), std::nanf("")};
  planforge::ops::sgemm(false, false, 2, 2, 1, 1.f, A.data(), 1, B.data(), 2, 0.f, C.data(), 2);
  CHECK_EQ(C[0], 3.f);
  CHECK_EQ(C[3], 8.f);
}
