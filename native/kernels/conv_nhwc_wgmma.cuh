// Convolution on NHWC FP16 activations with Hopper's warpgroup MMA (wgmma, sm_90a): the same
// implicit GEMM as conv_nhwc.cuh (M = output pixels, N = Co, K = KH * KW * C with c fastest, the
// same [Co][KH][KW][C] FP16 weights, the same fused epilogue), for the shapes where the tensor
// cores' rate is what counts: C % 64 == 0, so each 64-wide K tile is 64 channels of one kernel
// position (one 128-byte row per pixel), and the output is an FP16 NHWC chain value.
//   Block: 128 x BN output tile, two warpgroups (256 threads), each one m64 x BN accumulator in
//   registers (wgmma m64nBNk16, FP32 accumulation). K tiles of 64 stream through a cp.async
//   pipeline of STAGES shared-memory stages; every thread gathers 16-byte chunks of the implicit
//   im2col rows (zero-filled outside the image) and of the weight rows, stored in the 128-byte
//   swizzled K-major layout the wgmma shared-memory descriptors read (chunk c of row r at chunk
//   c ^ (r % 8), 8-row atoms of 1024 bytes, 1024-byte aligned), so the tensor cores read without
//   bank conflicts and no ldmatrix / register shuffling is needed.
//   Epilogue: bias, FP16 NHWC residual, activation, FP16 rounding, staged through shared memory
//   for coalesced 16-byte stores (as conv_nhwc.cuh's fast path).
// Only sm_90a cubins have these kernels (the Makefile builds sm_90 as sm_90a): the executor uses
// them where cuModuleGetFunction finds them, so a plan built from an older cubin never runs them.
#pragma once
#include "conv_nhwc.cuh"

#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PF_WGMMA_KERNELS 1
#endif

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// D[64 x N] += A[64 x 16] * B[16 x N]^T, A and B K-major in shared memory (descriptors), FP32 D in
// registers: thread t of the warpgroup holds rows 16 * (t / 32) + (t % 32) / 4 (+ 8) and columns
// 8 j + 2 (t % 4) (+ 1), the mma.sync m16n8 fragment repeated over N / 8 column blocks j.
__device__ __forceinline__ void pfWgmmaM64N128K16(float (&d)[64], uint64_t descA, uint64_t descB) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(descA), "l"(descB)
      : "memory");
}

__device__ __forceinline__ void pfWgmmaM64N64K16(float (&d)[32], uint64_t descA, uint64_t descB) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(descA), "l"(descB)
      : "memory");
}

// Shared-memory matrix descriptor of a K-major tile in the 128-byte swizzle layout: start address,
// leading byte offset (unused by this layout), stride byte offset 1024 (from one 8-row atom to the
// next), swizzle mode 1 (128 bytes). Stepping 16 halves along K adds 32 bytes to the start address.
__device__ __forceinline__ uint64_t pfWgmmaDescSw128(uint32_t smemAddr) {
  return static_cast<uint64_t>((smemAddr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(1) << 16) | (static_cast<uint64_t>(1024 >> 4) << 32) |
         (static_cast<uint64_t>(1) << 62);
}
__device__ __forceinline__ void pfWgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void pfWgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void pfWgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// cp.async writes through the generic proxy; wgmma reads through the async proxy.
__device__ __forceinline__ void pfFenceProxyAsyncShared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

template <int BN>
__device__ __forceinline__ void pfWgmmaM64K16(float (&d)[BN / 2], uint64_t descA, uint64_t descB) {
  if constexpr (BN == 128) pfWgmmaM64N128K16(d, descA, descB);
  else pfWgmmaM64N64K16(d, descA, descB);
}

// OVERLAP = false: each K tile's wgmma group completes before the next tile's barrier (prefetch
// distance STAGES - 1). OVERLAP = true: a tile's wgmma group runs on while the next tile's loads
// are issued and its barrier passes (wgmma.wait_group 1: the group before it is done), so the
// tensor cores do not idle across barriers; the stage refilled is then the one read two tiles
// back (prefetch distance STAGES - 2).
template <int BN, int STAGES, bool OVERLAP>
__device__ __forceinline__ void pfConvNhwcWgmma(const PfConvNhwcParams& p) {
  constexpr int BM = 128, T = 256, ROW = 128;  // bytes per tile row: 64 halves of K
  constexpr int A_BYTES = BM * ROW, B_BYTES = BN * ROW, STAGE_BYTES = A_BYTES + B_BYTES;
  constexpr int A_ROWS = BM * 8 / T, B_ROWS = BN * 8 / T;  // 16-byte chunks per thread and stage
  static_assert(BN == 64 || BN == 128, "wgmma tile width");
  extern __shared__ __align__(16) unsigned char pfSmem[];
  // The swizzle atoms must be 1024-byte aligned: the host allocates 1 KiB more than the stages.
  const uint32_t raw = static_cast<uint32_t>(__cvta_generic_to_shared(pfSmem));
  const uint32_t pad = (1024u - (raw & 1023u)) & 1023u;
  unsigned char* smem = pfSmem + pad;
  const uint32_t smemAddr = raw + pad;
  const int tid = threadIdx.x, lane = tid & 31, wg = tid >> 7, warpInWg = (tid >> 5) & 3;
  const int chunk = tid & 7, rowBase = tid >> 3;  // rows rowBase + 32 i; the same 16-byte chunk of each
  const int swz = (chunk ^ (rowBase & 7)) << 4;   // its swizzled byte offset in the row (row % 8 == rowBase % 8)
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int KT = p.K / 64;

  const __half* aImage[A_ROWS];
  int aIh[A_ROWS], aIw[A_ROWS];
  pfConvNhwcRowOrigins<32>(p, m0, rowBase, aImage, aIh, aIw);
  int ci = chunk * 8, kh = 0, kw = 0;  // this thread's channel and kernel position in the next K tile
  int kb = chunk * 8;                  // its K offset into the weight rows
  auto loadTile = [&](int stage) {
    unsigned char* a = smem + stage * STAGE_BYTES;
    unsigned char* b = a + A_BYTES;
    const int dh = kh * p.dh, dw = kw * p.dw;
#pragma unroll
    for (int i = 0; i < A_ROWS; ++i) {
      const int ih = aIh[i] + dh, iw = aIw[i] + dw;
      const bool ok = ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
      const __half* src = ok ? aImage[i] + (static_cast<long long>(ih) * p.W + iw) * p.C + ci : p.input;
      pfCpAsync16(a + (rowBase + i * 32) * ROW + swz, src, ok);
    }
#pragma unroll
    for (int i = 0; i < B_ROWS; ++i) {
      const int co = n0 + rowBase + i * 32;
      const bool ok = co < p.Co;
      pfCpAsync16(b + (rowBase + i * 32) * ROW + swz, ok ? p.weight + static_cast<long long>(co) * p.K + kb : p.weight, ok);
    }
    kb += 64;
    ci += 64;
    if (ci >= p.C) {
      ci -= p.C;
      if (++kw == p.KW) {
        kw = 0;
        ++kh;
      }
    }
  };

  float acc[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) acc[i] = 0.f;
  constexpr int AHEAD = OVERLAP ? STAGES - 2 : STAGES - 1;  // K tiles in flight ahead of the one computed
  static_assert(AHEAD >= 1, "pipeline depth");
#pragma unroll
  for (int s = 0; s < AHEAD; ++s) {
    if (s < KT) loadTile(s);
    pfCpAsyncCommit();
  }
  for (int t = 0; t < KT; ++t) {
    pfCpAsyncWait<AHEAD - 1>();  // this thread's copies of tile t have landed
    pfFenceProxyAsyncShared();
    // Tile t is in shared memory for every thread, and every warpgroup is done with the stage
    // refilled below (tile t - 1's without OVERLAP, tile t - 2's with it).
    __syncthreads();
    const int next = t + AHEAD;
    if (next < KT) loadTile(next % STAGES);
    pfCpAsyncCommit();
    const uint32_t stage = smemAddr + (t % STAGES) * STAGE_BYTES;
    const uint64_t da = pfWgmmaDescSw128(stage + wg * 64 * ROW), db = pfWgmmaDescSw128(stage + A_BYTES);
    pfWgmmaFence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) pfWgmmaM64K16<BN>(acc, da + 2 * kk, db + 2 * kk);
    pfWgmmaCommit();
    pfWgmmaWait<OVERLAP ? 1 : 0>();
  }
  pfWgmmaWait<0>();
  pfCpAsyncWait<0>();
  __syncthreads();  // the pipeline's shared memory becomes the output tile

  constexpr int LDC = BN + 8;  // halves per staged row (16-byte aligned, conflict-free)
  static_assert(BM * LDC * 2 <= STAGES * STAGE_BYTES, "the output tile fits the pipeline's shared memory");
  __half* cs = reinterpret_cast<__half*>(smem);
  const __half* res = static_cast<const __half*>(p.residual);
  if (res) {
    pfConvNhwcStageResidual<BM, BN, LDC, T>(p, res, cs, m0, n0, tid);
    __syncthreads();
  }
  const int row0 = wg * 64 + warpInWg * 16 + (lane >> 2);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const int col = j * 8 + (lane & 3) * 2, co = n0 + col;
    const float2 bias = (p.bias && co < p.Co) ? __ldg(reinterpret_cast<const float2*>(p.bias + co)) : make_float2(0.f, 0.f);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      __half2* cp = reinterpret_cast<__half2*>(cs + (row0 + h * 8) * LDC + col);
      const float2 rv = res ? __half22float2(*cp) : make_float2(0.f, 0.f);
      const float v0 = pfConvNhwcActivate(acc[j * 4 + 2 * h] + bias.x + rv.x, p.act, p.actAlpha, p.actBeta);
      const float v1 = pfConvNhwcActivate(acc[j * 4 + 2 * h + 1] + bias.y + rv.y, p.act, p.actAlpha, p.actBeta);
      *cp = __floats2half2_rn(v0, v1);
    }
  }
  __syncthreads();
  pfConvNhwcStoreStaged<BM, BN, LDC, T>(p, cs, static_cast<__half*>(p.output), m0, n0, tid);
}
#endif  // __CUDA_ARCH_FEAT_SM90_ALL

#if defined(PF_WGMMA_KERNELS)
// Tactics kTacticConvNhwcWgmma* (tactics.h): 128 x BN tiles, STAGES deep, with or without overlapped
// wgmma groups. Shared memory: STAGES x (128 + BN) x 128 bytes + 1 KiB of alignment slack (the host
// raises the limit): 97 KiB (two blocks per SM) but for the 4-stage 128 x 128 tile (129 KiB, one).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PF_WGMMA_BODY(BN, STAGES, OVERLAP) pfConvNhwcWgmma<BN, STAGES, OVERLAP>(p)
#else
#define PF_WGMMA_BODY(BN, STAGES, OVERLAP)
#endif
extern "C" __global__ void __launch_bounds__(256, 2) pf_conv_nhwc_wgmma_128x128(PfConvNhwcParams p) {
  PF_KERNEL_PROLOGUE();
  PF_WGMMA_BODY(128, 3, false);
}
extern "C" __global__ void __launch_bounds__(256, 2) pf_conv_nhwc_wgmma_128x64(PfConvNhwcParams p) {
  PF_KERNEL_PROLOGUE();
  PF_WGMMA_BODY(64, 4, false);
}
extern "C" __global__ void __launch_bounds__(256, 1) pf_conv_nhwc_wgmma_128x128_overlap(PfConvNhwcParams p) {
  PF_KERNEL_PROLOGUE();
  PF_WGMMA_BODY(128, 4, true);
}
extern "C" __global__ void __launch_bounds__(256, 2) pf_conv_nhwc_wgmma_128x64_overlap(PfConvNhwcParams p) {
  PF_KERNEL_PROLOGUE();
  PF_WGMMA_BODY(64, 4, true);
}
#undef PF_WGMMA_BODY
#endif
