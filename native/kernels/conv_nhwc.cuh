// Convolution on NHWC FP16 activations: an implicit GEMM on tensor cores (mma.sync m16n8k16,
// FP16 operands, FP32 accumulation) with the whole epilogue fused, so a chain of FP16 convolutions
// never materialises im2col columns, FP32 activations or a separate bias / residual / rounding pass.
//   GEMM: M = N * OH * OW output pixels (rows), N = Co output channels (columns),
//         K = KH * KW * C, ordered (kh, kw, c) with c fastest, so a 16-byte chunk of 8 channels is
//         contiguous in both the NHWC input and the [Co][KH][KW][C] weights (C padded to 8).
//   Tiles: BM x BN x 32, cp.async multi-stage pipeline into shared memory (rows padded to 80 bytes:
//   ldmatrix reads 8 rows without bank conflicts), ldmatrix into mma fragments.
//   Split-K (small grids, batch 1): gridDim.z slices of the K tiles write FP32 partial sums to a
//   workspace [slice][M][Co]; pf_conv_nhwc_splitk_reduce sums them and runs the epilogue.
// Only the input / output layouts differ from the NCHW kernels: a convolution whose neighbours are
// not NHWC reads its input through pf_nchw_to_nhwc16 and writes its output as FP32 NCHW.
#pragma once
#include "common.cuh"

struct PfConvNhwcParams {
  const __half* input;   // [N][H][W][C], C = input channels padded to a multiple of 8
  const __half* weight;  // [Co][KH][KW][C]
  const float* bias;     // [Co] or null
  const void* residual;  // null, [N][OH][OW][Co] FP16 (residualNchw = 0) or [N][Co][OH][OW] FP32 (1)
  void* output;          // [N][OH][OW][Co] FP16 (outputNchw = 0) or [N][Co][OH][OW] FP32 (1)
  float* workspace;      // split-K partial sums [gridDim.z][M][Co]
  int N, H, W, C, Co, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
  int M, K;              // M = N * OH * OW, K = KH * KW * C
  int kTilesPerSplit;    // K tiles (of 32) per split-K slice
  int act;
  float actAlpha, actBeta;
  int residualNchw, outputNchw;
  int roundOutput;       // FP32 NCHW output rounded to FP16 values (the folded RoundToFp16)
  int splits;            // gridDim.z of the GEMM launch (1: the GEMM kernel runs the epilogue)
  int pad_;
};

__device__ __forceinline__ void pfCpAsync16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;  // 0: the 16 bytes are zero-filled (padding, tails)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void pfCpAsync8(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 8 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void pfCpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void pfCpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void pfLdmatrixX4(unsigned (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void pfMma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The epilogue's activation. ReLU and none inline; the others through one out-of-line copy of
// pfActivate, so the unrolled epilogues do not each carry every activation's code.
__device__ __noinline__ float pfActivateOutOfLine(float v, int op, float alpha, float beta) { return pfActivate(v, op, alpha, beta); }
__device__ __forceinline__ float pfConvNhwcActivate(float v, int op, float alpha, float beta) {
  if (op == PF_RELU) return v > 0.f ? v : 0.f;
  if (op == PF_COPY) return v;
  return pfActivateOutOfLine(v, op, alpha, beta);
}

// Bias, residual, activation, store of two adjacent output channels (co, co + 1) of pixel m.
__device__ __forceinline__ void pfConvNhwcStore(const PfConvNhwcParams& p, int m, int co, float v0, float v1) {
  if (p.bias) {
    v0 += p.bias[co];
    v1 += p.bias[co + 1];
  }
  const long long nhwc = static_cast<long long>(m) * p.Co + co;
  long long nchw = 0;
  if (p.outputNchw || (p.residual && p.residualNchw)) {
    const int pix = p.OH * p.OW;
    const int n = m / pix;
    nchw = (static_cast<long long>(n) * p.Co + co) * pix + (m - n * pix);
  }
  if (p.residual) {
    if (p.residualNchw) {
      const float* r = static_cast<const float*>(p.residual);
      v0 += r[nchw];
      v1 += r[nchw + p.OH * p.OW];
    } else {
      const float2 r = __half22float2(static_cast<const __half2*>(p.residual)[nhwc >> 1]);
      v0 += r.x;
      v1 += r.y;
    }
  }
  v0 = pfConvNhwcActivate(v0, p.act, p.actAlpha, p.actBeta);
  v1 = pfConvNhwcActivate(v1, p.act, p.actAlpha, p.actBeta);
  if (!p.outputNchw) {
    static_cast<__half2*>(p.output)[nhwc >> 1] = __floats2half2_rn(v0, v1);
  } else {
    if (p.roundOutput) {
      v0 = __half2float(__float2half_rn(v0));
      v1 = __half2float(__float2half_rn(v1));
    }
    float* y = static_cast<float*>(p.output);
    y[nchw] = v0;
    y[nchw + p.OH * p.OW] = v1;
  }
}

// The input window origin of each of a thread's A rows (output pixels m0 + rowBase + i * STEP): the
// image, and the top-left input row / column (outside the image for rows past M).
template <int STEP, int ROWS>
__device__ __forceinline__ void pfConvNhwcRowOrigins(const PfConvNhwcParams& p, int m0, int rowBase, const __half* (&image)[ROWS],
                                                     int (&ih)[ROWS], int (&iw)[ROWS]) {
  const int pix = p.OH * p.OW;
#pragma unroll
  for (int i = 0; i < ROWS; ++i) {
    const int m = m0 + rowBase + i * STEP;
    if (m < p.M) {
      const int n = m / pix, q = m - n * pix, oh = q / p.OW, ow = q - oh * p.OW;
      image[i] = p.input + static_cast<long long>(n) * p.H * p.W * p.C;
      ih[i] = oh * p.sh - p.ph;
      iw[i] = ow * p.sw - p.pw;
    } else {
      image[i] = p.input;
      ih[i] = -(1 << 28);  // never inside the image
      iw[i] = 0;
    }
  }
}

// The staged epilogue's two coalesced passes over a BM x BN output tile in shared memory (cs, LDC
// halves per row): the FP16 NHWC residual in before the fragments are finished, the output out after.
template <int BM, int BN, int LDC, int T>
__device__ __forceinline__ void pfConvNhwcStageResidual(const PfConvNhwcParams& p, const __half* res, __half* cs, int m0, int n0, int tid) {
  constexpr int CH = BN / 8;
  for (int c = tid; c < BM * CH; c += T) {
    const int r = c / CH, k = c - r * CH, m = m0 + r, co = n0 + k * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (m < p.M && co < p.Co) v = __ldg(reinterpret_cast<const uint4*>(res + static_cast<long long>(m) * p.Co + co));
    *reinterpret_cast<uint4*>(cs + r * LDC + k * 8) = v;
  }
}
template <int BM, int BN, int LDC, int T>
__device__ __forceinline__ void pfConvNhwcStoreStaged(const PfConvNhwcParams& p, const __half* cs, __half* out, int m0, int n0, int tid) {
  constexpr int CH = BN / 8;
  for (int c = tid; c < BM * CH; c += T) {
    const int r = c / CH, k = c - r * CH, m = m0 + r, co = n0 + k * 8;
    if (m < p.M && co < p.Co)
      *reinterpret_cast<uint4*>(out + static_cast<long long>(m) * p.Co + co) = *reinterpret_cast<const uint4*>(cs + r * LDC + k * 8);
  }
}

// C4 (stems with at most 4 input channels, C = 4): a 16-byte chunk holds two kernel positions of
// 4 channels, each loaded with its own 8-byte copy (zero-filled outside the image), so K is
// KH * KW * 4 (rounded up to 8; the weights' rows are padded) instead of KH * KW * 8.
template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool C4 = false>
__device__ __forceinline__ void pfConvNhwcGemm(const PfConvNhwcParams& p) {
  constexpr int BK = 32, LDS = BK + 8;  // halves per shared-memory row: 80 bytes
  constexpr int T = 32 * WARPS_M * WARPS_N;
  constexpr int WTM = BM / WARPS_M, WTN = BN / WARPS_N, MI = WTM / 16, NI = WTN / 8;
  constexpr int A_ROWS = BM * 4 / T, B_ROWS = BN * 4 / T;  // 16-byte chunks per thread and stage
  static_assert(NI % 2 == 0 && A_ROWS >= 1 && B_ROWS >= 1 && (BM * 4) % T == 0 && (BN * 4) % T == 0, "tile shape");
  extern __shared__ __align__(16) unsigned char pfSmem[];
  __half* As = reinterpret_cast<__half*>(pfSmem);  // [STAGES][BM][LDS]
  __half* Bs = As + STAGES * BM * LDS;             // [STAGES][BN][LDS]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int KT = (p.K + BK - 1) / BK;
  const int ktBegin = blockIdx.z * p.kTilesPerSplit;
  const int nk = max(0, min(KT, ktBegin + p.kTilesPerSplit) - ktBegin);

  // This thread's A rows (output pixels) and their input window origins; its 8-channel chunk of
  // each 32-wide K slice is fixed (tid % 4), so one (kh, kw, c) cursor serves all its rows.
  const int chunk = tid & 3, rowBase = tid >> 2;
  const __half* aImage[A_ROWS];
  int aIh[A_ROWS], aIw[A_ROWS];
  pfConvNhwcRowOrigins<T / 4>(p, m0, rowBase, aImage, aIh, aIw);
  int kc = ktBegin * BK + chunk * 8;
  int pos = C4 ? kc / 4 : kc / p.C, ci = C4 ? 0 : kc - pos * p.C;
  int kh = pos / p.KW, kw = pos - kh * p.KW;
  int kb = kc;  // this thread's K offset into the weights (same chunk)

  auto loadTile = [&](int stage) {
    __half* as = As + stage * BM * LDS;
    __half* bs = Bs + stage * BN * LDS;
    const bool kOk = kh < p.KH;
    if (C4) {
      const int kh2 = kw + 1 == p.KW ? kh + 1 : kh, kw2 = kw + 1 == p.KW ? 0 : kw + 1;  // the chunk's second position
      const bool kOk2 = kh2 < p.KH;
#pragma unroll
      for (int i = 0; i < A_ROWS; ++i) {
        __half* dst = as + (rowBase + i * (T / 4)) * LDS + chunk * 8;
        const int ih = aIh[i] + kh * p.dh, iw = aIw[i] + kw * p.dw;
        const bool ok = kOk && ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
        pfCpAsync8(dst, ok ? aImage[i] + (static_cast<long long>(ih) * p.W + iw) * 4 : p.input, ok);
        const int ih2 = aIh[i] + kh2 * p.dh, iw2 = aIw[i] + kw2 * p.dw;
        const bool ok2 = kOk2 && ih2 >= 0 && ih2 < p.H && iw2 >= 0 && iw2 < p.W;
        pfCpAsync8(dst + 4, ok2 ? aImage[i] + (static_cast<long long>(ih2) * p.W + iw2) * 4 : p.input, ok2);
      }
    } else {
#pragma unroll
      for (int i = 0; i < A_ROWS; ++i) {
        const int ih = aIh[i] + kh * p.dh, iw = aIw[i] + kw * p.dw;
        const bool ok = kOk && ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
        const __half* src = ok ? aImage[i] + (static_cast<long long>(ih) * p.W + iw) * p.C + ci : p.input;
        pfCpAsync16(as + (rowBase + i * (T / 4)) * LDS + chunk * 8, src, ok);
      }
    }
#pragma unroll
    for (int i = 0; i < B_ROWS; ++i) {
      const int co = n0 + rowBase + i * (T / 4);
      const bool ok = co < p.Co && kb < p.K;
      const __half* src = ok ? p.weight + static_cast<long long>(co) * p.K + kb : p.weight;
      pfCpAsync16(bs + (rowBase + i * (T / 4)) * LDS + chunk * 8, src, ok);
    }
    // Next K slice: 32 channels on (C4: 8 kernel positions), wrapping into the next kernel position(s).
    kb += BK;
    if (C4) {
      kw += BK / 4;
      while (kw >= p.KW) {
        kw -= p.KW;
        ++kh;
      }
    } else {
      ci += BK;
      while (ci >= p.C) {
        ci -= p.C;
        if (++kw == p.KW) {
          kw = 0;
          ++kh;
        }
      }
    }
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < nk) loadTile(s);
    pfCpAsyncCommit();
  }
  for (int t = 0; t < nk; ++t) {
    pfCpAsyncWait<STAGES - 2>();
    __syncthreads();
    const int next = t + STAGES - 1;
    if (next < nk) loadTile(next % STAGES);
    pfCpAsyncCommit();
    const __half* as = As + (t % STAGES) * BM * LDS;
    const __half* bs = Bs + (t % STAGES) * BN * LDS;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      unsigned af[MI][4], bf[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) pfLdmatrixX4(af[i], as + (wm * WTM + i * 16 + (lane & 15)) * LDS + kk + (lane >> 4) * 8);
#pragma unroll
      for (int j = 0; j < NI / 2; ++j) {
        unsigned r[4];
        pfLdmatrixX4(r, bs + (wn * WTN + j * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS + kk + ((lane >> 3) & 1) * 8);
        bf[2 * j][0] = r[0];
        bf[2 * j][1] = r[1];
        bf[2 * j + 1][0] = r[2];
        bf[2 * j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) pfMma16816(acc[i][j], af[i], bf[j][0], bf[j][1]);
    }
  }
  pfCpAsyncWait<0>();

  // Epilogue. NHWC output without split-K: staged through shared memory (the pipeline's, now
  // free) so the residual is read and the output written in coalesced 16-byte chunks; each
  // thread finishes its own fragment in place (bias, residual, activation, FP16 rounding).
  const int coBase = n0 + wn * WTN + (lane & 3) * 2;
  const bool fast = p.splits == 1 && !p.outputNchw && !(p.residual && p.residualNchw);
  if (fast) {
    constexpr int LDC = BN + 8;  // halves per staged row (16-byte aligned, conflict-free)
    static_assert(BM * LDC <= STAGES * (BM + BN) * LDS, "the output tile fits the pipeline's shared memory");
    float2 bias[NI];
#pragma unroll
    for (int j = 0; j < NI; ++j) {
      const int co = coBase + j * 8;
      bias[j] = (p.bias && co < p.Co) ? __ldg(reinterpret_cast<const float2*>(p.bias + co)) : make_float2(0.f, 0.f);
    }
    __half* cs = As;
    const __half* res = static_cast<const __half*>(p.residual);
    __half* out = static_cast<__half*>(p.output);
    __syncthreads();  // every warp is done with the last stage
    if (res) {
      pfConvNhwcStageResidual<BM, BN, LDC, T>(p, res, cs, m0, n0, tid);
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int j = 0; j < NI; ++j) {
          __half2* cp = reinterpret_cast<__half2*>(cs + (wm * WTM + i * 16 + (lane >> 2) + h * 8) * LDC + wn * WTN + j * 8 + (lane & 3) * 2);
          const float2 rv = res ? __half22float2(*cp) : make_float2(0.f, 0.f);
          const float v0 = pfConvNhwcActivate(acc[i][j][2 * h] + bias[j].x + rv.x, p.act, p.actAlpha, p.actBeta);
          const float v1 = pfConvNhwcActivate(acc[i][j][2 * h + 1] + bias[j].y + rv.y, p.act, p.actAlpha, p.actBeta);
          *cp = __floats2half2_rn(v0, v1);
        }
    __syncthreads();
    pfConvNhwcStoreStaged<BM, BN, LDC, T>(p, cs, out, m0, n0, tid);
    return;
  }
#pragma unroll
  for (int i = 0; i < MI; ++i) {
    const int mA = m0 + wm * WTM + i * 16 + (lane >> 2), mB = mA + 8;
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int m = h ? mB : mA, co = coBase + j * 8;
        if (m >= p.M || co >= p.Co) continue;
        const float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
        if (p.splits > 1) {
          *reinterpret_cast<float2*>(p.workspace + (static_cast<long long>(blockIdx.z) * p.M + m) * p.Co + co) = make_float2(v0, v1);
        } else {  // FP32 NCHW output or residual (the convolutions at the edge of an NHWC chain)
          pfConvNhwcStore(p, m, co, v0, v1);
        }
      }
  }
}

// Tactics (native/src/core/gpu/tactics.h kTacticConvNhwc*): tile BM x BN, warps, pipeline stages.
// Shared memory per block = STAGES * (BM + BN) * 80 bytes (dynamic; the host raises the limit).
extern "C" __global__ void __launch_bounds__(128) pf_conv_nhwc_128x128(PfConvNhwcParams p) { PF_KERNEL_PROLOGUE(); pfConvNhwcGemm<128, 128, 2, 2, 3>(p); }
extern "C" __global__ void __launch_bounds__(256) pf_conv_nhwc_256x128(PfConvNhwcParams p) { PF_KERNEL_PROLOGUE(); pfConvNhwcGemm<256, 128, 4, 2, 3>(p); }
extern "C" __global__ void __launch_bounds__(128) pf_conv_nhwc_128x64(PfConvNhwcParams p) { PF_KERNEL_PROLOGUE(); pfConvNhwcGemm<128, 64, 2, 2, 4>(p); }
extern "C" __global__ void __launch_bounds__(128) pf_conv_nhwc_64x64(PfConvNhwcParams p) { PF_KERNEL_PROLOGUE(); pfConvNhwcGemm<64, 64, 2, 2, 4>(p); }
extern "C" __global__ void __launch_bounds__(128) pf_conv_nhwc_128x128_c4(PfConvNhwcParams p) { PF_KERNEL_PROLOGUE(); pfConvNhwcGemm<128, 128, 2, 2, 3, true>(p); }
extern "C" __global__ void __launch_bounds__(256) pf_conv_nhwc_256x128_c4(PfConvNhwcParams p) { PF_KERNEL_PROLOGUE(); pfConvNhwcGemm<256, 128, 4, 2, 3, true>(p); }
extern "C" __global__ void __launch_bounds__(128) pf_conv_nhwc_128x64_c4(PfConvNhwcParams p) { PF_KERNEL_PROLOGUE(); pfConvNhwcGemm<128, 64, 2, 2, 4, true>(p); }
extern "C" __global__ void __launch_bounds__(128) pf_conv_nhwc_64x64_c4(PfConvNhwcParams p) { PF_KERNEL_PROLOGUE(); pfConvNhwcGemm<64, 64, 2, 2, 4, true>(p); }

// Split-K: one thread per (pixel, channel pair) sums the slices and runs the epilogue.
extern "C" __global__ void pf_conv_nhwc_splitk_reduce(PfConvNhwcParams p) {
  PF_KERNEL_PROLOGUE();
  const int pairs = p.Co / 2;
  const long long total = static_cast<long long>(p.M) * pairs, slice = static_cast<long long>(p.M) * p.Co;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int m = static_cast<int>(i / pairs), co = static_cast<int>(i - static_cast<long long>(m) * pairs) * 2;
    const float* w = p.workspace + static_cast<long long>(m) * p.Co + co;
    float v0 = 0.f, v1 = 0.f;
    for (int s = 0; s < p.splits; ++s) {
      const float2 v = *reinterpret_cast<const float2*>(w + s * slice);
      v0 += v.x;
      v1 += v.y;
    }
    pfConvNhwcStore(p, m, co, v0, v1);
  }
}

// FP32 NCHW -> FP16 NHWC with the channels padded to Cp (zeros): a 32 x 32 tile transpose per block
// (grid: pixel tiles, channel tiles, images), reads and writes both coalesced.
// Strided 1 x 1 convolutions on cuBLASLt (tactic 19): the input pixels the convolution reads,
// y[n][oh][ow][:] = x[n][oh * sh][ow * sw][:], packed densely (16-byte chunks; C % 8 == 0).
extern "C" __global__ void pf_subsample_nhwc16(const __half* x, __half* y, int N, int H, int W, int C, int OH, int OW, int sh, int sw) {
  PF_KERNEL_PROLOGUE();
  const int chunks = C / 8;
  const long long total = static_cast<long long>(N) * OH * OW * chunks;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const int c = static_cast<int>(i % chunks);
    const long long pix = i / chunks;
    const int ow = static_cast<int>(pix % OW), oh = static_cast<int>((pix / OW) % OH);
    const long long n = pix / (static_cast<long long>(OW) * OH);
    const long long src = ((n * H + static_cast<long long>(oh) * sh) * W + static_cast<long long>(ow) * sw) * chunks + c;
    reinterpret_cast<uint4*>(y)[i] = reinterpret_cast<const uint4*>(x)[src];
  }
}

extern "C" __global__ void pf_nchw_to_nhwc16(const float* x, __half* y, int C, int HW, int Cp) {
  PF_KERNEL_PROLOGUE();
  __shared__ float tile[32][33];
  const int n = blockIdx.z, hw0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
  const int tx = threadIdx.x, ty = threadIdx.y;  // 32 x 8
  const float* xi = x + static_cast<long long>(n) * C * HW;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int c = c0 + ty + j * 8, hw = hw0 + tx;
    tile[ty + j * 8][tx] = (c < C && hw < HW) ? xi[static_cast<long long>(c) * HW + hw] : 0.f;
  }
  __syncthreads();
  __half* yi = y + static_cast<long long>(n) * HW * Cp;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int hw = hw0 + ty + j * 8, c = c0 + tx;
    if (hw < HW && c < Cp) yi[static_cast<long long>(hw) * Cp + c] = __float2half_rn(tile[tx][ty + j * 8]);
  }
}

// MaxPool on FP16 NHWC (C % 8 == 0): one thread per (output pixel, 8 channels), 16-byte loads and
// stores. A window that lies entirely in the padding gives -inf, as the NCHW kernel does.
extern "C" __global__ void pf_maxpool_nhwc16(const __half* x, __half* y, int N, int H, int W, int C, int OH, int OW, int KH, int KW,
                                             int sh, int sw, int ph, int pw, int dh, int dw) {
  PF_KERNEL_PROLOGUE();
  const int groups = C / 8;
  const long long total = static_cast<long long>(N) * OH * OW * groups;
  const uint4* x8 = reinterpret_cast<const uint4*>(x);
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long pix = i / groups;
    const int g = static_cast<int>(i - pix * groups);
    const int ow = static_cast<int>(pix % OW);
    const long long t = pix / OW;
    const int oh = static_cast<int>(t % OH);
    const long long n = t / OH;
    const __half2 ninf = __halves2half2(__ushort_as_half(0xfc00), __ushort_as_half(0xfc00));
    __half2 best[4] = {ninf, ninf, ninf, ninf};
    for (int kh = 0; kh < KH; ++kh) {
      const int ih = oh * sh - ph + kh * dh;
      if (ih < 0 || ih >= H) continue;
      for (int kw = 0; kw < KW; ++kw) {
        const int iw = ow * sw - pw + kw * dw;
        if (iw < 0 || iw >= W) continue;
        uint4 v = __ldg(x8 + ((n * H + ih) * W + iw) * groups + g);
        const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
        for (int k = 0; k < 4; ++k) best[k] = __hmax2(best[k], h[k]);
      }
    }
    reinterpret_cast<uint4*>(y)[i] = *reinterpret_cast<const uint4*>(best);
  }
}

// GlobalAveragePool of FP16 NHWC into FP32 [N][C] (= NCHW [N][C][1][1]): one thread per (n, c),
// consecutive threads on consecutive channels.
extern "C" __global__ void pf_gap_nhwc16(const __half* x, float* y, int N, int HW, int C) {
  PF_KERNEL_PROLOGUE();
  const long long total = static_cast<long long>(N) * C;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % C);
    const long long n = i / C;
    const __half* xi = x + n * HW * C + c;
    float s = 0.f;
    for (int q = 0; q < HW; ++q) s += __half2float(xi[static_cast<long long>(q) * C]);
    y[i] = s / static_cast<float>(HW);
  }
}
