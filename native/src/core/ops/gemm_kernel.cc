#include "gemm_kernel.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace planforge {
namespace ops {

namespace {

constexpr int64_t kMR = 6;    // rows of the micro-tile
constexpr int64_t kNR = 16;   // columns of the micro-tile (two 8-float vectors)
constexpr int64_t kKC = 256;  // depth of a packed panel (A sliver + B sliver stay in L1/L2)
constexpr int64_t kMC = 120;  // rows of a packed A block (multiple of kMR)
constexpr int64_t kNC = 2048; // columns of a packed B block (multiple of kNR)

typedef float v8f __attribute__((vector_size(32)));

std::atomic<int> gThreads{0};

inline float at(const float* M, int64_t ld, bool trans, int64_t r, int64_t c) {
  return trans ? M[c * ld + r] : M[r * ld + c];
}

// Packs rows [i0, i0+mc) x depth [k0, k0+kc) of op(A), scaled by alpha, into kMR-row slivers:
// dst[sliver][k][r], zero-padded to a multiple of kMR rows.
void packA(const float* A, int64_t lda, bool transA, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float alpha,
           float* dst) {
  for (int64_t ir = 0; ir < mc; ir += kMR) {
    const int64_t mr = std::min(kMR, mc - ir);
    for (int64_t k = 0; k < kc; ++k) {
      float* d = dst + (ir / kMR) * kc * kMR + k * kMR;
      int64_t r = 0;
      for (; r < mr; ++r) d[r] = alpha * at(A, lda, transA, i0 + ir + r, k0 + k);
      for (; r < kMR; ++r) d[r] = 0.f;
    }
  }
}

// Packs depth [k0, k0+kc) x columns [j0, j0+nc) of op(B) into kNR-column slivers: dst[sliver][k][c].
void packB(const float* B, int64_t ldb, bool transB, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t jr = 0; jr < nc; jr += kNR) {
    const int64_t nr = std::min(kNR, nc - jr);
    float* base = dst + (jr / kNR) * kc * kNR;
    if (!transB && nr == kNR) {
      for (int64_t k = 0; k < kc; ++k) std::memcpy(base + k * kNR, B + (k0 + k) * ldb + j0 + jr, kNR * sizeof(float));
      continue;
    }
    for (int64_t k = 0; k < kc; ++k) {
      float* d = base + k * kNR;
      int64_t c = 0;
      for (; c < nr; ++c) d[c] = at(B, ldb, transB, k0 + k, j0 + jr + c);
      for (; c < kNR; ++c) d[c] = 0.f;
    }
  }
}

// C[mc, nc] += packedA * packedB, register-blocked kMR x kNR.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))  // AVX2+FMA where the CPU has it
#endif
void macroKernel(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc) {
  for (int64_t jr = 0; jr < nc; jr += kNR) {
    const int64_t nr = std::min(kNR, nc - jr);
    const float* bs = Bp + (jr / kNR) * kc * kNR;
    for (int64_t ir = 0; ir < mc; ir += kMR) {
      const int64_t mr = std::min(kMR, mc - ir);
      const float* as = Ap + (ir / kMR) * kc * kMR;
      v8f acc[kMR][2];
#pragma GCC unroll 6
      for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = v8f{};
      for (int64_t k = 0; k < kc; ++k) {
        v8f b0, b1;
        std::memcpy(&b0, bs + k * kNR, sizeof(v8f));
        std::memcpy(&b1, bs + k * kNR + 8, sizeof(v8f));
        const float* a = as + k * kMR;
#pragma GCC unroll 6
        for (int r = 0; r < kMR; ++r) {
          acc[r][0] += a[r] * b0;
          acc[r][1] += a[r] * b1;
        }
      }
      float* c = C + ir * ldc + jr;
      if (nr == kNR) {
        for (int64_t r = 0; r < mr; ++r) {
          v8f c0, c1;
          std::memcpy(&c0, c + r * ldc, sizeof(v8f));
          std::memcpy(&c1, c + r * ldc + 8, sizeof(v8f));
          c0 += acc[r][0];
          c1 += acc[r][1];
          std::memcpy(c + r * ldc, &c0, sizeof(v8f));
          std::memcpy(c + r * ldc + 8, &c1, sizeof(v8f));
        }
      } else {
        for (int64_t r = 0; r < mr; ++r) {
          float tmp[kNR];
          std::memcpy(tmp, &acc[r][0], sizeof(v8f));
          std::memcpy(tmp + 8, &acc[r][1], sizeof(v8f));
          for (int64_t j = 0; j < nr; ++j) c[r * ldc + j] += tmp[j];
        }
      }
    }
  }
}

void sgemmSerial(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.f) std::fill(c, c + N, 0.f);
    else if (beta != 1.f) for (int64_t j = 0; j < N; ++j) c[j] *= beta;
  }
  if (K == 0 || alpha == 0.f) return;
  std::vector<float> bpack(static_cast<size_t>(kKC * ((std::min(kNC, N) + kNR - 1) / kNR) * kNR));
  std::vector<float> apack(static_cast<size_t>(kKC * ((std::min(kMC, M) + kMR - 1) / kMR) * kMR));
  for (int64_t j0 = 0; j0 < N; j0 += kNC) {
    const int64_t nc = std::min(kNC, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      const int64_t kc = std::min(kKC, K - k0);
      packB(B, ldb, transB, k0, kc, j0, nc, bpack.data());
      for (int64_t i0 = 0; i0 < M; i0 += kMC) {
        const int64_t mc = std::min(kMC, M - i0);
        packA(A, lda, transA, i0, mc, k0, kc, alpha, apack.data());
        macroKernel(mc, nc, kc, apack.data(), bpack.data(), C + i0 * ldc + j0, ldc);
      }
    }
  }
}

}  // namespace

void setGemmThreads(int threads) { gThreads = std::max(1, threads); }

int gemmThreads() {
  int t = gThreads.load();
  if (t > 0) return t;
  unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::max(1u, std::min(hw, 4u)));
}

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  int threads = gemmThreads();
  const double work = static_cast<double>(M) * N * std::max<int64_t>(K, 1);
  if (work < 4e6) threads = 1;
  if (threads <= 1) {
    sgemmSerial(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the larger of M and N; each part is an independent serial GEMM on a sub-block.
  std::vector<std::thread> pool;
  const bool splitRows = M >= N;
  const int64_t total = splitRows ? M : N;
  const int64_t unit = splitRows ? kMR : kNR;
  int64_t chunk = (total + threads - 1) / threads;
  chunk = (chunk + unit - 1) / unit * unit;
  for (int64_t start = 0; start < total; start += chunk) {
    const int64_t len = std::min(chunk, total - start);
    const float* a = splitRows ? (transA ? A + start : A + start * lda) : A;
    const float* b = splitRows ? B : (transB ? B + start * ldb : B + start);
    float* c = splitRows ? C + start * ldc : C + start;
    const int64_t m = splitRows ? len : M, n = splitRows ? N : len;
    try {
      pool.emplace_back(sgemmSerial, transA, transB, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc);
    } catch (const std::system_error&) {
      // No thread available: do this part here.
      sgemmSerial(transA, transB, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc);
    }
  }
  for (auto& t : pool) t.join();
}

}  // namespace ops
}  // namespace planforge
