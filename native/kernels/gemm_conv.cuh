// GEMM and convolution as one tiled GEMM core with pluggable operand loaders:
//  - FP32 SIMT path (64x64x8 tile, 256 threads, 4x4 outputs per thread),
//  - FP16 tensor-core path (wmma 16x16x16, 64x64x32 tile, 4 warps of 32x32) with FP32 accumulation:
//    operands are read as float32 and rounded to half when staged in shared memory.
// Convolution is an implicit GEMM (im2col computed on the fly): M = output channels of a group,
// N = batch * output pixels, K = input channels of a group * KH * KW. blockIdx.z = batch (GEMM)
// or group (conv).
#pragma once
#include <mma.h>

#include "common.cuh"

struct PfGemmParams {
  const float* A;
  const float* B;
  float* Y;                       // row-major [batch][M][N]
  long long M, N, K;
  long long sAm, sAk, sBk, sBn;   // element strides (transposes are strides)
  long long batchA, batchB;       // batch strides (0 broadcasts)
  PfEpilogue epi;                 // residual uses the output layout
};

struct PfConvParams {
  const float* input;   // [N][C][H][W]
  const float* weight;  // [Co][C/groups][KH][KW]
  float* output;        // [N][Co][OH][OW]
  int N, C, H, W, Co, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, groups;
  PfEpilogue epi;  // bias indexed by output channel (biasStrideM = 1, biasStrideN = 0)
};

struct PfGemmProblem {
  const PfGemmParams& p;
  int z;
  __device__ long long M() const { return p.M; }
  __device__ long long N() const { return p.N; }
  __device__ long long K() const { return p.K; }
  __device__ float a(long long m, long long k) const {
    return (m < p.M && k < p.K) ? p.A[z * p.batchA + m * p.sAm + k * p.sAk] : 0.f;
  }
  __device__ float b(long long k, long long n) const {
    return (k < p.K && n < p.N) ? p.B[z * p.batchB + k * p.sBk + n * p.sBn] : 0.f;
  }
  __device__ void store(long long m, long long n, float acc) const {
    if (m >= p.M || n >= p.N) return;
    const long long o = (long long)z * p.M * p.N + m * p.N + n;
    p.Y[o] = pfEpilogue(p.epi, acc, m, n, o);
  }
};

struct PfConvProblem {
  const PfConvParams& p;
  int g;  // group
  __device__ long long M() const { return p.Co / p.groups; }
  __device__ long long N() const { return (long long)p.N * p.OH * p.OW; }
  __device__ long long K() const { return (long long)(p.C / p.groups) * p.KH * p.KW; }
  __device__ float a(long long m, long long k) const {
    return (m < M() && k < K()) ? p.weight[(g * M() + m) * K() + k] : 0.f;
  }
  __device__ float b(long long k, long long col) const {
    if (k >= K() || col >= N()) return 0.f;
    const int khw = p.KH * p.KW;
    const int ci = (int)(k / khw), r = (int)(k % khw);
    const int kh = r / p.KW, kw = r % p.KW;
    const long long pix = (long long)p.OH * p.OW;
    const int n = (int)(col / pix);
    const int q = (int)(col % pix);
    const int oh = q / p.OW, ow = q % p.OW;
    const int ih = oh * p.sh - p.ph + kh * p.dh, iw = ow * p.sw - p.pw + kw * p.dw;
    if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) return 0.f;
    const int c = g * (p.C / p.groups) + ci;
    return p.input[(((long long)n * p.C + c) * p.H + ih) * p.W + iw];
  }
  __device__ void store(long long m, long long col, float acc) const {
    if (m >= M() || col >= N()) return;
    const long long pix = (long long)p.OH * p.OW;
    const long long n = col / pix, q = col % pix;
    const long long co = g * M() + m;
    const long long o = (n * p.Co + co) * pix + q;
    p.output[o] = pfEpilogue(p.epi, acc, co, 0, o);
  }
};

// ---- FP32 SIMT core ----
template <typename Problem>
__device__ __forceinline__ void pfGemmF32(const Problem& P) {
  constexpr int BM = 64, BN = 64, BK = 8;
  __shared__ float As[BK][BM];
  __shared__ float Bs[BK][BN];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const long long m0 = (long long)blockIdx.y * BM, n0 = (long long)blockIdx.x * BN;
  float acc[4][4] = {};
  const long long K = P.K();
  for (long long k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = tid + r * 256;
      As[i % BK][i / BK] = P.a(m0 + i / BK, k0 + i % BK);
      Bs[i / BN][i % BN] = P.b(k0 + i / BN, n0 + i % BN);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) P.store(m0 + ty + 16 * i, n0 + tx + 16 * j, acc[i][j]);
}

// ---- FP16 tensor-core core (wmma) ----
template <typename Problem>
__device__ __forceinline__ void pfGemmF16(const Problem& P) {
  using namespace nvcuda;
  constexpr int BM = 64, BN = 64, BK = 32, LDA = BK + 8, LDB = BN + 8, LDC = BN + 4;
  __shared__ __align__(32) __half As[BM * LDA];
  __shared__ __align__(32) __half Bs[BK * LDB];
  __shared__ __align__(32) float Cs[BM * LDC];
  const int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
  const long long m0 = (long long)blockIdx.y * BM, n0 = (long long)blockIdx.x * BN;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);
  const long long K = P.K();
  for (long long k0 = 0; k0 < K; k0 += BK) {
#pragma unroll 4
    for (int r = 0; r < 16; ++r) {
      const int i = tid + r * 128;
      As[(i / BK) * LDA + i % BK] = __float2half_rn(P.a(m0 + i / BK, k0 + i % BK));
      Bs[(i / BN) * LDB + i % BN] = __float2half_rn(P.b(k0 + i / BN, n0 + i % BN));
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], As + (wm * 32 + i * 16) * LDA + kk, LDA);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], Bs + kk * LDB + wn * 32 + j * 16, LDB);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * LDC + wn * 32 + j * 16, acc[i][j], LDC, wmma::mem_row_major);
  __syncthreads();
  for (int i = tid; i < BM * BN; i += 128) P.store(m0 + i / BN, n0 + i % BN, Cs[(i / BN) * LDC + i % BN]);
}

extern "C" __global__ void __launch_bounds__(256) pf_gemm_f32(PfGemmParams p) {
  pfGemmF32(PfGemmProblem{p, (int)blockIdx.z});
}
extern "C" __global__ void __launch_bounds__(128) pf_gemm_f16tc(PfGemmParams p) {
  pfGemmF16(PfGemmProblem{p, (int)blockIdx.z});
}
extern "C" __global__ void __launch_bounds__(256) pf_conv_f32(PfConvParams p) {
  pfGemmF32(PfConvProblem{p, (int)blockIdx.z});
}
extern "C" __global__ void __launch_bounds__(128) pf_conv_f16tc(PfConvParams p) {
  pfGemmF16(PfConvProblem{p, (int)blockIdx.z});
}

// Depthwise-style convolution (one input channel per group): one thread per output element.
extern "C" __global__ void pf_conv_depthwise(PfConvParams p) {
  const long long total = (long long)p.N * p.Co * p.OH * p.OW;
  const int coPerGroup = p.Co / p.groups;
  for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total; o += (long long)gridDim.x * blockDim.x) {
    const int ow = (int)(o % p.OW);
    const int oh = (int)((o / p.OW) % p.OH);
    const int co = (int)((o / ((long long)p.OW * p.OH)) % p.Co);
    const long long n = o / ((long long)p.OW * p.OH * p.Co);
    const int c = co / coPerGroup;
    const float* x = p.input + (n * p.C + c) * (long long)p.H * p.W;
    const float* w = p.weight + (long long)co * p.KH * p.KW;
    float acc = 0.f;
    for (int kh = 0; kh < p.KH; ++kh) {
      const int ih = oh * p.sh - p.ph + kh * p.dh;
      if (ih < 0 || ih >= p.H) continue;
      for (int kw = 0; kw < p.KW; ++kw) {
        const int iw = ow * p.sw - p.pw + kw * p.dw;
        if (iw < 0 || iw >= p.W) continue;
        acc += x[(long long)ih * p.W + iw] * w[kh * p.KW + kw];
      }
    }
    p.output[o] = pfEpilogue(p.epi, acc, co, 0, o);
  }
}
