// The one float GEMM used by Conv, ConvTranspose, Gemm and MatMul: packed panels,
// a register-blocked micro-kernel (AVX2/FMA clone picked at load time where the CPU
// has it) and a split over a few std::threads for large products.
#pragma once
#include <cstdint>

namespace planforge {
namespace ops {

// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, all row-major.
// op(A) = A (lda >= K) or A^T (A is [K,M], lda >= M); same for B (ldb >= N, or >= K when transB).
// beta == 0 overwrites C without reading it (NaN in C does not leak).
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Upper bound of threads sgemm uses (>= 1); defaults to min(hardware threads, 4).
void setGemmThreads(int threads);
int gemmThreads();

}  // namespace ops
}  // namespace planforge
