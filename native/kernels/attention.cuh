// planforge.FusedAttention: y[b, i, h*D + c] = sum_j softmax_j(scale * q_i . k_j + mask[b, h, i, j]) v[j, c]
// on [B, S, H*D] FP32 buffers (in FP16 plans their values are FP16-exact), scores never leave the chip.
//   pf_attention_f16_d{32,64,128}: tensor cores (mma.sync m16n8k16, FP32 accumulation), one CTA per
//     (64 queries, head, batch), 4 warps of 16 queries, keys in blocks of 64 with an online softmax
//     (FlashAttention-2's loop); the probabilities are rounded to FP16 for the P.V product.
//   pf_attention: FP32 SIMT for FP32 plans and any head size up to 256: a warp per query, a lane
//     per key of each block of 32, the same online softmax.
// A row whose scores are all -inf gives NaN (Softmax's 0/0), or 0 with nanToZero.
#pragma once
#include <type_traits>

struct PfAttentionParams {
  const void* q;         // float, or half with qkvHalf
  const void* k;
  const void* v;
  const float* mask;     // nullptr: none
  void* y;               // float, or half with yHalf
  long long sqB, sqS;    // element strides of batch / sequence in q (head h starts at h * D)
  long long skB, skS, svB, svS, syB, syS;
  long long mB, mH, mQ, mK;  // mask strides over [B, H, Sq, Skv] (0 where it broadcasts)
  int B, H, Sq, Skv, D;
  float scale;
  int nanToZero;
  int roundOutput;       // round a float y to FP16 values (the folded RoundToFp16)
  int qkvHalf, yHalf;    // FP16 storage of Q / K / V and of y (tensor-core kernels only)
};

__device__ __forceinline__ float pfAttentionMask(const PfAttentionParams& p, int b, int h, int i, int j) {
  return p.mask ? p.mask[b * p.mB + h * p.mH + i * p.mQ + j * p.mK] : 0.f;
}

// The rescale factor of the running sums when the row maximum moves from mOld to mNew (both may be -inf).
__device__ __forceinline__ float pfAttentionAlpha(float mOld, float mNew) { return mOld == -INFINITY ? 0.f : exp2f(mOld - mNew); }

__device__ __forceinline__ float pfAttentionFinish(const PfAttentionParams& p, float o, float l) {
  const float r = l > 0.f ? o / l : (p.nanToZero ? 0.f : __int_as_float(0x7fc00000));
  return p.roundOutput ? __half2float(__float2half_rn(r)) : r;
}

// ---------------------------------------------------------------- FP32 SIMT
constexpr int kPfAttnSimtWarps = 4;
constexpr int kPfAttnSimtMaxD = 256;

extern "C" __global__ void __launch_bounds__(kPfAttnSimtWarps * 32) pf_attention(PfAttentionParams p) {
  PF_KERNEL_PROLOGUE();
  __shared__ float sq[kPfAttnSimtWarps][kPfAttnSimtMaxD];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int i = blockIdx.x * kPfAttnSimtWarps + warp, h = blockIdx.y, b = blockIdx.z;
  if (i >= p.Sq) return;
  const float log2e = 1.4426950408889634f;
  const float* q = static_cast<const float*>(p.q) + b * p.sqB + i * p.sqS + h * p.D;
  for (int c = lane; c < p.D; c += 32) sq[warp][c] = q[c];
  __syncwarp();
  constexpr int kV = kPfAttnSimtMaxD / 32;
  float o[kV];
#pragma unroll
  for (int t = 0; t < kV; ++t) o[t] = 0.f;
  float m = -INFINITY, l = 0.f;  // running max (log2 units) and sum of this row
  for (int j0 = 0; j0 < p.Skv; j0 += 32) {
    const int j = j0 + lane;
    float s = -INFINITY;
    if (j < p.Skv) {
      const float* k = static_cast<const float*>(p.k) + b * p.skB + j * p.skS + h * p.D;
      float acc = 0.f;
      for (int c = 0; c < p.D; ++c) acc += sq[warp][c] * k[c];
      s = (acc * p.scale + pfAttentionMask(p, b, h, i, j)) * log2e;
    }
    float bm = s;
#pragma unroll
    for (int off = 16; off; off >>= 1) bm = fmaxf(bm, __shfl_xor_sync(0xffffffffu, bm, off));
    const float mNew = fmaxf(m, bm);
    const float alpha = pfAttentionAlpha(m, mNew);
    const float e = s == -INFINITY ? 0.f : exp2f(s - mNew);
    float se = e;
#pragma unroll
    for (int off = 16; off; off >>= 1) se += __shfl_xor_sync(0xffffffffu, se, off);
    l = l * alpha + se;
    m = mNew;
#pragma unroll
    for (int t = 0; t < kV; ++t) o[t] *= alpha;
    const int n = min(32, p.Skv - j0);
    for (int jj = 0; jj < n; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, e, jj);
      const float* v = static_cast<const float*>(p.v) + b * p.svB + (j0 + jj) * p.svS + h * p.D;
#pragma unroll
      for (int t = 0; t < kV; ++t)
        if (lane + 32 * t < p.D) o[t] += pj * v[lane + 32 * t];
    }
  }
  float* y = static_cast<float*>(p.y) + b * p.syB + i * p.syS + h * p.D;
#pragma unroll
  for (int t = 0; t < kV; ++t)
    if (lane + 32 * t < p.D) y[lane + 32 * t] = pfAttentionFinish(p, o[t], l);
}

// ---------------------------------------------------------------- FP16 tensor cores
constexpr int kPfAttnRows = 64;     // queries per CTA (4 warps x 16)
constexpr int kPfAttnKeys = 64;     // keys per block
constexpr int kPfAttnThreads = 128;

__device__ __forceinline__ void pfLdmatrixX4Trans(unsigned (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ unsigned pfPackHalf2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const unsigned*>(&h);
}

// Rows [first, first + N * THREADS / kVecPerRow) of a 64 x D tile: N loads per thread issued before their stores.
template <int D, int THREADS, int N, bool HALF>
__device__ __forceinline__ void pfAttentionLoadRows(__half* dst, const void* src, long long ld, int valid, int first) {
  constexpr int kLd = D + 8, kPer = HALF ? 8 : 4, kVecPerRow = D / kPer;
  typedef typename std::conditional<HALF, uint4, float4>::type Vec;
  Vec x[N];
#pragma unroll
  for (int it = 0; it < N; ++it) {
    const int e = threadIdx.x + it * THREADS, r = first + e / kVecPerRow, c = (e % kVecPerRow) * kPer;
    if (r < valid) {
      if constexpr (HALF) x[it] = *reinterpret_cast<const uint4*>(static_cast<const __half*>(src) + r * ld + c);
      else x[it] = *reinterpret_cast<const float4*>(static_cast<const float*>(src) + r * ld + c);
    } else {
      x[it] = Vec{};
    }
  }
#pragma unroll
  for (int it = 0; it < N; ++it) {
    const int e = threadIdx.x + it * THREADS, r = first + e / kVecPerRow, c = (e % kVecPerRow) * kPer;
    if constexpr (HALF) {
      *reinterpret_cast<uint4*>(dst + r * kLd + c) = x[it];
    } else {
      __half2* d = reinterpret_cast<__half2*>(dst + r * kLd + c);
      d[0] = __floats2half2_rn(x[it].x, x[it].y);
      d[1] = __floats2half2_rn(x[it].z, x[it].w);
    }
  }
}

// 64 rows x D values (float, or half with isHalf; row stride ld elements, rows past `valid` zero) ->
// FP16 shared memory [64][D + 8] by THREADS threads, in passes of at most 8 loads per thread.
template <int D, int THREADS>
__device__ __forceinline__ void pfAttentionLoadTile(__half* dst, const void* src, int isHalf, long long ld, int valid) {
  constexpr int kHalfIters = kPfAttnKeys * (D / 8) / THREADS, kFloatIters = kPfAttnKeys * (D / 4) / THREADS;
  constexpr int kHalfN = kHalfIters < 8 ? kHalfIters : 8, kFloatN = kFloatIters < 8 ? kFloatIters : 8;
  if (isHalf) {
#pragma unroll 1
    for (int pass = 0; pass < kHalfIters / kHalfN; ++pass)
      pfAttentionLoadRows<D, THREADS, kHalfN, true>(dst, src, ld, valid, pass * kHalfN * THREADS / (D / 8));
    return;
  }
#pragma unroll 1
  for (int pass = 0; pass < kFloatIters / kFloatN; ++pass)
    pfAttentionLoadRows<D, THREADS, kFloatN, false>(dst, src, ld, valid, pass * kFloatN * THREADS / (D / 4));
}

template <int D>
__device__ __forceinline__ void pfAttentionF16(const PfAttentionParams& p) {
  constexpr int kRows = kPfAttnRows, kThreads = kPfAttnThreads;
  constexpr int kLd = D + 8, kDSteps = D / 16, kNTiles = kPfAttnKeys / 8, kOTiles = D / 8;
  __shared__ __align__(16) __half sK[kPfAttnKeys * kLd];
  __shared__ __align__(16) __half sV[kPfAttnKeys * kLd];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int i0 = blockIdx.x * kRows, h = blockIdx.y, b = blockIdx.z;
  const float log2e = 1.4426950408889634f;
  const float sc = p.scale * log2e;

  // Q: through sK into registers (A fragments of the warp's 16 rows).
  const int es = p.qkvHalf ? 2 : 4;  // element size of Q / K / V
  pfAttentionLoadTile<D, kThreads>(sK, static_cast<const char*>(p.q) + (b * p.sqB + (long long)i0 * p.sqS + h * D) * es, p.qkvHalf, p.sqS,
                                   min(kRows, p.Sq - i0));
  __syncthreads();
  unsigned qa[kDSteps][4];
#pragma unroll
  for (int kk = 0; kk < kDSteps; ++kk) pfLdmatrixX4(qa[kk], sK + (warp * 16 + (lane & 15)) * kLd + kk * 16 + (lane >> 4) * 8);
  __syncthreads();

  float o[kOTiles][4];
#pragma unroll
  for (int n = 0; n < kOTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // rows g and g + 8 of the warp (log2 units)
  const int r0 = i0 + warp * 16 + g, r1 = r0 + 8;

  for (int j0 = 0; j0 < p.Skv; j0 += kPfAttnKeys) {
    const int valid = min(kPfAttnKeys, p.Skv - j0);
    pfAttentionLoadTile<D, kThreads>(sK, static_cast<const char*>(p.k) + (b * p.skB + (long long)j0 * p.skS + h * D) * es, p.qkvHalf, p.skS, valid);
    pfAttentionLoadTile<D, kThreads>(sV, static_cast<const char*>(p.v) + (b * p.svB + (long long)j0 * p.svS + h * D) * es, p.qkvHalf, p.svS, valid);
    __syncthreads();

    float s[kNTiles][4];
#pragma unroll
    for (int n = 0; n < kNTiles; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kDSteps; ++kk)
#pragma unroll
      for (int n = 0; n < kNTiles; n += 2) {
        unsigned kb[4];  // B fragments of key tiles n and n + 1
        pfLdmatrixX4(kb, sK + (n * 8 + (lane & 7) + (lane >> 4) * 8) * kLd + kk * 16 + ((lane >> 3) & 1) * 8);
        pfMma16816(s[n], qa[kk], kb[0], kb[1]);
        pfMma16816(s[n + 1], qa[kk], kb[2], kb[3]);
      }

    // Scale, mask, tails; the block's row maxima.
    float bm0 = -INFINITY, bm1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < kNTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = j0 + n * 8 + 2 * t + (e & 1), i = e < 2 ? r0 : r1;
        float x = -INFINITY;
        if (j < p.Skv && i < p.Sq) x = s[n][e] * sc + pfAttentionMask(p, b, h, i, j) * log2e;
        s[n][e] = x;
        if (e < 2) bm0 = fmaxf(bm0, x);
        else bm1 = fmaxf(bm1, x);
      }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      bm0 = fmaxf(bm0, __shfl_xor_sync(0xffffffffu, bm0, off));
      bm1 = fmaxf(bm1, __shfl_xor_sync(0xffffffffu, bm1, off));
    }
    const float mn0 = fmaxf(m0, bm0), mn1 = fmaxf(m1, bm1);
    const float a0 = pfAttentionAlpha(m0, mn0), a1 = pfAttentionAlpha(m1, mn1);
    m0 = mn0;
    m1 = mn1;
    float ls0 = 0.f, ls1 = 0.f;
#pragma unroll
    for (int n = 0; n < kNTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float mm = e < 2 ? m0 : m1;
        const float x = s[n][e] == -INFINITY ? 0.f : exp2f(s[n][e] - mm);
        s[n][e] = x;
        if (e < 2) ls0 += x;
        else ls1 += x;
      }
    l0 = l0 * a0 + ls0;  // per-thread partial sums; the quad adds them at the end
    l1 = l1 * a1 + ls1;
#pragma unroll
    for (int n = 0; n < kOTiles; ++n) {
      o[n][0] *= a0;
      o[n][1] *= a0;
      o[n][2] *= a1;
      o[n][3] *= a1;
    }

    // O += P V: the score accumulators of key tiles 2kk, 2kk + 1 are the A fragment of k-step kk.
#pragma unroll
    for (int kk = 0; kk < kPfAttnKeys / 16; ++kk) {
      unsigned pa[4];
      pa[0] = pfPackHalf2(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = pfPackHalf2(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = pfPackHalf2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = pfPackHalf2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int n = 0; n < kOTiles; n += 2) {
        unsigned vb[4];  // B fragments of output tiles n and n + 1 (V is [key][d]: transposed load)
        pfLdmatrixX4Trans(vb, sV + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kLd + n * 8 + (lane >> 4) * 8);
        pfMma16816(o[n], pa, vb[0], vb[1]);
        pfMma16816(o[n + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
#pragma unroll
  for (int n = 0; n < kOTiles; ++n) {
    const int c = h * D + n * 8 + 2 * t;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = half ? r1 : r0;
      if (r >= p.Sq) continue;
      const float l = half ? l1 : l0;
      const float a = pfAttentionFinish(p, o[n][2 * half], l), bb = pfAttentionFinish(p, o[n][2 * half + 1], l);
      const long long at = b * p.syB + (long long)r * p.syS + c;
      if (p.yHalf) *reinterpret_cast<__half2*>(static_cast<__half*>(p.y) + at) = __floats2half2_rn(a, bb);
      else *reinterpret_cast<float2*>(static_cast<float*>(p.y) + at) = make_float2(a, bb);
    }
  }
}

// One-warp CTAs for small grids (batch 1: four times the CTAs) were tried and dropped: 0.728 vs 0.700 ms on
// BERT-base bs1 (bench/gpu/REPORT.md, run 27).
extern "C" __global__ void __launch_bounds__(kPfAttnThreads) pf_attention_f16_d32(PfAttentionParams p) { PF_KERNEL_PROLOGUE(); pfAttentionF16<32>(p); }
extern "C" __global__ void __launch_bounds__(kPfAttnThreads) pf_attention_f16_d64(PfAttentionParams p) { PF_KERNEL_PROLOGUE(); pfAttentionF16<64>(p); }
extern "C" __global__ void __launch_bounds__(kPfAttnThreads) pf_attention_f16_d128(PfAttentionParams p) { PF_KERNEL_PROLOGUE(); pfAttentionF16<128>(p); }
