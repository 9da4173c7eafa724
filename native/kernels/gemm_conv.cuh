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
  // Split-K (small grids): blockIdx.z = z * splits + slice; each slice sums K range
  // [slice * kChunk, +kChunk) into workspace[(z * splits + slice) * M * N + m * N + n]; the reduce
  // kernel then sums the slices and applies the epilogue. splits = 1: no workspace.
  float* workspace;
  long long kChunk;
  int splits;
  int pad_;
};

struct PfConvParams {
  const float* input;   // [N][C][H][W]
  const float* weight;  // [Co][C/groups][KH][KW]
  float* output;        // [N][Co][OH][OW]
  int N, C, H, W, Co, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, groups;
  PfEpilogue epi;  // bias indexed by output channel (biasStrideM = 1, biasStrideN = 0)
  float* workspace;  // split-K, as in PfGemmParams (blockIdx.z = group * splits + slice)
  long long kChunk;
  int splits;
  int pad_;
};

struct PfGemmProblem {
  const PfGemmParams& p;
  int z_;
  __device__ int z() const { return z_; }
  __device__ long long M() const { return p.M; }
  __device__ long long N() const { return p.N; }
  __device__ long long K() const { return p.K; }
  __device__ float a(long long m, long long k) const {
    return (m < p.M && k < p.K) ? p.A[z_ * p.batchA + m * p.sAm + k * p.sAk] : 0.f;
  }
  __device__ float b(long long k, long long n) const {
    return (k < p.K && n < p.N) ? p.B[z_ * p.batchB + k * p.sBk + n * p.sBn] : 0.f;
  }
  __device__ void store(long long m, long long n, float acc) const {
    if (m >= p.M || n >= p.N) return;
    const long long o = (long long)z_ * p.M * p.N + m * p.N + n;
    p.Y[o] = pfEpilogue(p.epi, acc, m, n, o);
  }
};

struct PfConvProblem {
  const PfConvParams& p;
  int g;  // group
  __device__ int z() const { return g; }
  __device__ long long M() const { return p.Co / p.groups; }
  __device__ long long N() const { return (long long)p.N * p.OH * p.OW; }
  __device__ long long K() const { return (long long)(p.C / p.groups) * p.KH * p.KW; }
  __device__ float a(long long m, long long k) const {
    return (m < M() && k < K()) ? p.weight[(g * M() + m) * K() + k] : 0.f;
  }
  // 32-bit index math: 64-bit division is tens of instructions on the GPU and this runs once per
  // loaded element. The host only launches this kernel when N*C*H*W and N*OH*OW fit in int32.
  __device__ float b(long long k64, long long col64) const {
    if (k64 >= K() || col64 >= N()) return 0.f;
    const int k = (int)k64, col = (int)col64;
    const int khw = p.KH * p.KW;
    const int ci = k / khw, r = k - ci * khw;
    const int kh = r / p.KW, kw = r - kh * p.KW;
    const int pix = p.OH * p.OW;
    const int n = col / pix;
    const int q = col - n * pix;
    const int oh = q / p.OW, ow = q - oh * p.OW;
    const int ih = oh * p.sh - p.ph + kh * p.dh, iw = ow * p.sw - p.pw + kw * p.dw;
    if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) return 0.f;
    const int c = g * (p.C / p.groups) + ci;
    return p.input[((n * p.C + c) * p.H + ih) * p.W + iw];
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
// Where a block's results go: the problem's epilogue, or the split-K workspace.
template <typename Problem>
__device__ __forceinline__ void pfStore(const Problem& P, float* ws, int slice, int splits, long long m, long long n, float acc) {
  if (!ws) {
    P.store(m, n, acc);
  } else if (m < P.M() && n < P.N()) {
    ws[(((long long)P.z() * splits + slice) * P.M() + m) * P.N() + n] = acc;
  }
}

template <typename Problem>
__device__ __forceinline__ void pfGemmF32(const Problem& P, long long kBegin, long long kEnd, float* ws, int slice, int splits) {
  constexpr int BM = 64, BN = 64, BK = 8;
  __shared__ float As[BK][BM];
  __shared__ float Bs[BK][BN];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const long long m0 = (long long)blockIdx.y * BM, n0 = (long long)blockIdx.x * BN;
  float acc[4][4] = {};
  for (long long k0 = kBegin; k0 < kEnd; k0 += BK) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = tid + r * 256;
      const long long ka = k0 + i % BK, kb = k0 + i / BN;
      As[i % BK][i / BK] = ka < kEnd ? P.a(m0 + i / BK, ka) : 0.f;
      Bs[i / BN][i % BN] = kb < kEnd ? P.b(kb, n0 + i % BN) : 0.f;
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
    for (int j = 0; j < 4; ++j) pfStore(P, ws, slice, splits, m0 + ty + 16 * i, n0 + tx + 16 * j, acc[i][j]);
}

// ---- FP16 tensor-core core (wmma) ----
template <typename Problem>
__device__ __forceinline__ void pfGemmF16(const Problem& P, long long kBegin, long long kEnd, float* ws, int slice, int splits) {
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
  for (long long k0 = kBegin; k0 < kEnd; k0 += BK) {
#pragma unroll 4
    for (int r = 0; r < 16; ++r) {
      const int i = tid + r * 128;
      const long long ka = k0 + i % BK, kb = k0 + i / BN;
      As[(i / BK) * LDA + i % BK] = __float2half_rn(ka < kEnd ? P.a(m0 + i / BK, ka) : 0.f);
      Bs[(i / BN) * LDB + i % BN] = __float2half_rn(kb < kEnd ? P.b(kb, n0 + i % BN) : 0.f);
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
  for (int i = tid; i < BM * BN; i += 128) pfStore(P, ws, slice, splits, m0 + i / BN, n0 + i % BN, Cs[(i / BN) * LDC + i % BN]);
}

// blockIdx.z = z * splits + slice (splits = 1: z).
template <typename Params>
__device__ __forceinline__ void pfSplit(const Params& p, long long K, int& z, int& slice, long long& kBegin, long long& kEnd) {
  z = (int)(blockIdx.z / p.splits);
  slice = (int)(blockIdx.z % p.splits);
  kBegin = p.splits > 1 ? slice * p.kChunk : 0;
  kEnd = p.splits > 1 ? min(K, kBegin + p.kChunk) : K;
}

extern "C" __global__ void __launch_bounds__(256) pf_gemm_f32(PfGemmParams p) {
  PF_KERNEL_PROLOGUE();
  int z, slice; long long kb, ke;
  pfSplit(p, p.K, z, slice, kb, ke);
  pfGemmF32(PfGemmProblem{p, z}, kb, ke, p.splits > 1 ? p.workspace : nullptr, slice, p.splits);
}
extern "C" __global__ void __launch_bounds__(128) pf_gemm_f16tc(PfGemmParams p) {
  PF_KERNEL_PROLOGUE();
  int z, slice; long long kb, ke;
  pfSplit(p, p.K, z, slice, kb, ke);
  pfGemmF16(PfGemmProblem{p, z}, kb, ke, p.splits > 1 ? p.workspace : nullptr, slice, p.splits);
}
extern "C" __global__ void __launch_bounds__(256) pf_conv_f32(PfConvParams p) {
  PF_KERNEL_PROLOGUE();
  int z, slice; long long kb, ke;
  const long long K = (long long)(p.C / p.groups) * p.KH * p.KW;
  pfSplit(p, K, z, slice, kb, ke);
  pfGemmF32(PfConvProblem{p, z}, kb, ke, p.splits > 1 ? p.workspace : nullptr, slice, p.splits);
}
extern "C" __global__ void __launch_bounds__(128) pf_conv_f16tc(PfConvParams p) {
  PF_KERNEL_PROLOGUE();
  int z, slice; long long kb, ke;
  const long long K = (long long)(p.C / p.groups) * p.KH * p.KW;
  pfSplit(p, K, z, slice, kb, ke);
  pfGemmF16(PfConvProblem{p, z}, kb, ke, p.splits > 1 ? p.workspace : nullptr, slice, p.splits);
}

// Split-K reduction: sums the slices of each (z, m, n) and applies the problem's epilogue.
template <typename Problem>
__device__ __forceinline__ void pfSplitReduce(const Problem& P, const float* ws, int splits, long long m, long long n) {
  float acc = 0.f;
  const long long mn = P.M() * P.N();
  const float* base = ws + (long long)P.z() * splits * mn + m * P.N() + n;
  for (int s = 0; s < splits; ++s) acc += base[s * mn];
  P.store(m, n, acc);
}
extern "C" __global__ void pf_gemm_splitk_reduce(PfGemmParams p, long long batch) {
  PF_KERNEL_PROLOGUE();
  const long long mn = p.M * p.N, total = batch * mn;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x)
    pfSplitReduce(PfGemmProblem{p, (int)(i / mn)}, p.workspace, p.splits, (i % mn) / p.N, i % p.N);
}
extern "C" __global__ void pf_conv_splitk_reduce(PfConvParams p) {
  PF_KERNEL_PROLOGUE();
  const long long M = p.Co / p.groups, N = (long long)p.N * p.OH * p.OW, mn = M * N, total = (long long)p.groups * mn;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x)
    pfSplitReduce(PfConvProblem{p, (int)(i / mn)}, p.workspace, p.splits, (i % mn) / N, i % N);
}

// Depthwise-style convolution (one input channel per group): one thread per output element.
// ROUND: the FP16 plans' RoundToFp16 of the output, folded in (one launch instead of two).
template <bool ROUND>
__device__ __forceinline__ void pfConvDepthwise(const PfConvParams& p) {
  const long long total = (long long)p.N * p.Co * p.OH * p.OW;
  const int coPerGroup = p.Co / p.groups;
  for (long long o64 = blockIdx.x * (long long)blockDim.x + threadIdx.x; o64 < total; o64 += (long long)gridDim.x * blockDim.x) {
    const int o = (int)o64;  // 32-bit index math (the host checks the sizes fit)
    int t = o / p.OW;
    const int ow = o - t * p.OW;
    const int oh = t - (t / p.OH) * p.OH;
    t /= p.OH;
    const int co = t - (t / p.Co) * p.Co;
    const long long n = t / p.Co;
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
    const float v = pfEpilogue(p.epi, acc, co, 0, o);
    p.output[o] = ROUND ? __half2float(__float2half_rn(v)) : v;
  }
}
extern "C" __global__ void pf_conv_depthwise(PfConvParams p) { PF_KERNEL_PROLOGUE(); pfConvDepthwise<false>(p); }
extern "C" __global__ void pf_conv_depthwise_round(PfConvParams p) { PF_KERNEL_PROLOGUE(); pfConvDepthwise<true>(p); }

// 1 x 1 convolution of one-pixel images (squeeze-and-excitation fc layers, 1 x 1 heads): a
// matrix-vector product per image, one warp per output value, the whole epilogue fused, and the
// FP16 roundings of the input (left to this reader) and of the output (the folded RoundToFp16) in
// the same launch: one launch where cuBLASLt takes two or three at batch 1.
extern "C" __global__ void pf_conv1x1_vector(PfConvParams p, int roundInput, int roundOutput) {
  PF_KERNEL_PROLOGUE();
  const long long outputs = static_cast<long long>(p.N) * p.Co;
  const int lane = threadIdx.x & 31;
  const long long warpsInGrid = (static_cast<long long>(gridDim.x) * blockDim.x) >> 5;
  for (long long o = (blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x) >> 5; o < outputs; o += warpsInGrid) {
    const long long n = o / p.Co;
    const int co = static_cast<int>(o % p.Co);
    const float* x = p.input + n * p.C;
    const float* w = p.weight + static_cast<long long>(co) * p.C;
    float acc = 0.f;
    for (int c = lane; c < p.C; c += 32) {
      const float xv = roundInput ? __half2float(__float2half_rn(x[c])) : x[c];
      acc += w[c] * xv;
    }
#pragma unroll
    for (int off = 16; off; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) {
      const float v = pfEpilogue(p.epi, acc, co, 0, o);
      p.output[o] = roundOutput ? __half2float(__float2half_rn(v)) : v;
    }
  }
}
