// The planforge kernel module: compiled by nvcc into one cubin per target SM
// (sm_80, sm_86, sm_87, sm_90) and embedded in the optimizer; a plan carries the cubin of its SM.
// Host-side launch code: native/src/core/gpu/gpu_executor.cc (parameter structs: kernel_abi.h).
#include "common.cuh"
#include "gemm_conv.cuh"
#include "conv_nhwc.cuh"
#include "conv_nhwc_wgmma.cuh"
#include "attention.cuh"

#define PF_GRID_STRIDE(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// Marker: every kernel of this cubin starts with PF_KERNEL_PROLOGUE (common.cuh).
extern "C" __global__ void pf_programmatic_launch_v1() {}

extern "C" __global__ void pf_unary(const float* x, float* y, long long n, int op, float alpha, float beta) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) y[i] = pfActivate(x[i], op, alpha, beta);
}

// N-d strided view: element i of the (contiguous) output index space maps to offsets in a and b.
struct PfStrides {
  int rank;
  long long dims[PF_MAX_RANK];
  long long a[PF_MAX_RANK];
  long long b[PF_MAX_RANK];
};

enum PfBinary { PF_ADD = 0, PF_SUB = 1, PF_MUL = 2, PF_DIV = 3, PF_POW = 4, PF_MAX = 5, PF_MIN = 6, PF_PRELU = 7 };

__device__ __forceinline__ float pfBinary(float a, float b, int op) {
  switch (op) {
    case PF_ADD: return a + b;
    case PF_SUB: return a - b;
    case PF_MUL: return a * b;
    case PF_DIV: return a / b;
    case PF_POW: return (b == 2.f) ? a * a : powf(a, b);
    case PF_MAX: return fmaxf(a, b);
    case PF_MIN: return fminf(a, b);
    case PF_PRELU: return a < 0.f ? a * b : a;
  }
  return 0.f;
}

__device__ __forceinline__ void pfOffsets(const PfStrides& s, long long i, long long& oa, long long& ob) {
  oa = 0;
  ob = 0;
  if (i < 0x7fffffffLL) {  // 32-bit division is several times cheaper than 64-bit
    unsigned r = (unsigned)i;
    for (int d = s.rank - 1; d >= 0; --d) {
      const unsigned dim = (unsigned)s.dims[d], q = r / dim, c = r - q * dim;
      r = q;
      oa += (long long)c * s.a[d];
      ob += (long long)c * s.b[d];
    }
    return;
  }
  for (int d = s.rank - 1; d >= 0; --d) {
    const long long c = i % s.dims[d];
    i /= s.dims[d];
    oa += c * s.a[d];
    ob += c * s.b[d];
  }
}

// y[i] = a[.] op b[.] with numpy broadcasting expressed as strides (0 on broadcast dims).
extern "C" __global__ void pf_binary(const float* a, const float* b, float* y, long long n, int op, PfStrides s) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    long long oa, ob;
    pfOffsets(s, i, oa, ob);
    y[i] = pfBinary(a[oa], b[ob], op);
  }
}

// The same with the FP16 rounding of the layer's folded RoundToFp16 (FP16 plans: SE-block Mul, residual Add).
extern "C" __global__ void pf_binary_round(const float* a, const float* b, float* y, long long n, int op, PfStrides s) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    long long oa, ob;
    pfOffsets(s, i, oa, ob);
    y[i] = __half2float(__float2half_rn(pfBinary(a[oa], b[ob], op)));
  }
}

// Generic strided copy: element i of dims goes from x[offset a] to y[offset b]. Transpose, Concat
// (one launch per input into a slice of y), Slice, Expand (stride 0) are all this kernel.
extern "C" __global__ void pf_copy_nd(const float* x, float* y, long long n, PfStrides s) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    long long ox, oy;
    pfOffsets(s, i, ox, oy);
    y[oy] = x[ox];
  }
}

// ---- tensors of any element type (masks, ids: int64 / int32 / bool / 8-bit), elements of 1, 2, 4 or 8 bytes
__device__ __forceinline__ void pfCopyElem(const unsigned char* x, long long xi, unsigned char* y, long long yi, int bytes) {
  switch (bytes) {
    case 1: y[yi] = x[xi]; break;
    case 2: reinterpret_cast<unsigned short*>(y)[yi] = reinterpret_cast<const unsigned short*>(x)[xi]; break;
    case 4: reinterpret_cast<unsigned*>(y)[yi] = reinterpret_cast<const unsigned*>(x)[xi]; break;
    default: reinterpret_cast<unsigned long long*>(y)[yi] = reinterpret_cast<const unsigned long long*>(x)[xi]; break;
  }
}
// pf_copy_nd for any element size (Transpose, Expand of non-float tensors).
extern "C" __global__ void pf_copy_nd_bytes(const unsigned char* x, unsigned char* y, long long n, PfStrides s, int bytes) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    long long ox, oy;
    pfOffsets(s, i, ox, oy);
    pfCopyElem(x, ox, y, oy, bytes);
  }
}
// pf_gather for any element size; an index out of range gives 0.
extern "C" __global__ void pf_gather_bytes(const unsigned char* data, const long long* indices, unsigned char* y, long long outer, long long nIdx,
                                           long long axisDim, long long inner, int bytes) {
  PF_KERNEL_PROLOGUE();
  const long long n = outer * nIdx * inner;
  const unsigned long long zero = 0;
  PF_GRID_STRIDE(i, n) {
    const long long in = i % inner, j = (i / inner) % nIdx, o = i / (inner * nIdx);
    long long idx = indices[j];
    if (idx < 0) idx += axisDim;
    if (idx >= 0 && idx < axisDim) pfCopyElem(data, (o * axisDim + idx) * inner + in, y, i, bytes);
    else pfCopyElem(reinterpret_cast<const unsigned char*>(&zero), 0, y, i, bytes);
  }
}
// Cast between float32, int64, int32, bool, uint8 and int8 (codes 0..5) through double, as the CPU
// reference does: float -> integer truncates, anything -> bool is "not zero".
__device__ __forceinline__ double pfLoadAs(const void* x, long long i, int t) {
  switch (t) {
    case 0: return static_cast<const float*>(x)[i];
    case 1: return (double)static_cast<const long long*>(x)[i];
    case 2: return static_cast<const int*>(x)[i];
    case 5: return static_cast<const signed char*>(x)[i];
    default: return static_cast<const unsigned char*>(x)[i];
  }
}
extern "C" __global__ void pf_cast(const void* x, void* y, long long n, int from, int to) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    const double v = pfLoadAs(x, i, from);
    switch (to) {
      case 0: static_cast<float*>(y)[i] = (float)v; break;
      case 1: static_cast<long long*>(y)[i] = (long long)v; break;
      case 2: static_cast<int*>(y)[i] = (int)v; break;
      case 3: static_cast<unsigned char*>(y)[i] = v != 0.0 ? 1 : 0; break;
      case 4: static_cast<unsigned char*>(y)[i] = (unsigned char)v; break;
      default: static_cast<signed char*>(y)[i] = (signed char)v; break;
    }
  }
}
// And / Or / Xor (op 0 / 1 / 2) of bool tensors with numpy broadcasting; Not is op 3 (b unused).
extern "C" __global__ void pf_logical(const unsigned char* a, const unsigned char* b, unsigned char* y, long long n, int op, PfStrides s) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    long long oa, ob;
    pfOffsets(s, i, oa, ob);
    const bool x = a[oa] != 0, z = op == 3 ? false : b[ob] != 0;
    y[i] = (op == 0 ? (x && z) : op == 1 ? (x || z) : op == 2 ? (x != z) : !x) ? 1 : 0;
  }
}

// Gather along one axis: data viewed as [outer][axisDim][inner], indices int64 (negative wrap).
extern "C" __global__ void pf_gather(const float* data, const long long* indices, float* y, long long outer, long long nIdx,
                                     long long axisDim, long long inner) {
  PF_KERNEL_PROLOGUE();
  const long long n = outer * nIdx * inner;
  PF_GRID_STRIDE(i, n) {
    const long long in = i % inner, j = (i / inner) % nIdx, o = i / (inner * nIdx);
    long long idx = indices[j];
    if (idx < 0) idx += axisDim;
    y[i] = (idx >= 0 && idx < axisDim) ? data[(o * axisDim + idx) * inner + in] : 0.f;
  }
}

// Per-channel affine (inference BatchNormalization with precomputed scale/shift): x is [N][C][HW].
extern "C" __global__ void pf_channel_affine(const float* x, const float* scale, const float* shift, float* y, long long n, long long c,
                                             long long hw) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    const long long ch = (i / hw) % c;
    y[i] = x[i] * scale[ch] + shift[ch];
  }
}

// 2-D pooling over [NC][H][W]. mode 0 max, 1 average counting padding, 2 average excluding padding.
extern "C" __global__ void pf_pool2d(const float* x, float* y, long long nc, int H, int W, int OH, int OW, int KH, int KW, int sh,
                                     int sw, int ph, int pw, int dh, int dw, int mode) {
  PF_KERNEL_PROLOGUE();
  const long long n = nc * OH * OW;
  PF_GRID_STRIDE(i, n) {
    const unsigned u = (unsigned)i;  // the host checks nc * OH * OW fits in 32 bits
    const unsigned t = u / OW;
    const int ow = (int)(u - t * OW), oh = (int)(t % OH);
    const long long c = t / OH;
    const float* xp = x + c * H * W;
    float acc = mode == 0 ? -INFINITY : 0.f;
    int count = 0;
    for (int kh = 0; kh < KH; ++kh) {
      const int ih = oh * sh - ph + kh * dh;
      for (int kw = 0; kw < KW; ++kw) {
        const int iw = ow * sw - pw + kw * dw;
        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
        const float v = xp[ih * W + iw];
        acc = mode == 0 ? fmaxf(acc, v) : acc + v;
        ++count;
      }
    }
    if (mode == 1) acc /= (float)(KH * KW);
    if (mode == 2) acc = count ? acc / (float)count : 0.f;
    y[i] = acc;
  }
}

__device__ __forceinline__ float pfWarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float pfWarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reduction (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
template <bool kMax>
__device__ float pfBlockReduce(float v) {
  __shared__ float part[32];
  __shared__ float result;
  v = kMax ? pfWarpMax(v) : pfWarpSum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < (int)(blockDim.x / 32) ? part[lane] : (kMax ? -INFINITY : 0.f);
    w = kMax ? pfWarpMax(w) : pfWarpSum(w);
    if (lane == 0) result = w;
  }
  __syncthreads();
  const float r = result;
  __syncthreads();
  return r;
}

template <bool kRound>
__device__ __forceinline__ float pfMaybeRound(float v) {
  return kRound ? __half2float(__float2half_rn(v)) : v;
}

// Mean of each row (GlobalAveragePool, ReduceMean over trailing axes): one block per row; the _round
// variant rounds to FP16 values (the folded RoundToFp16).
template <bool kRound>
__device__ __forceinline__ void pfRowMean(const float* x, float* y, long long rows, long long len) {
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * len;
    float s = 0.f;
    for (long long j = threadIdx.x; j < len; j += blockDim.x) s += xr[j];
    s = pfBlockReduce<false>(s);
    if (threadIdx.x == 0) y[r] = pfMaybeRound<kRound>(s / (float)len);
  }
}
extern "C" __global__ void pf_row_mean(const float* x, float* y, long long rows, long long len) { PF_KERNEL_PROLOGUE(); pfRowMean<false>(x, y, rows, len); }
extern "C" __global__ void pf_row_mean_round(const float* x, float* y, long long rows, long long len) { PF_KERNEL_PROLOGUE(); pfRowMean<true>(x, y, rows, len); }


// Softmax / LogSoftmax over the last axis: one block per row. The _round variant also rounds the
// result to FP16 precision (an FP16 plan's RoundToFp16 of this output, folded in).
template <bool kRound>
__device__ __forceinline__ void pfSoftmax(const float* x, float* y, long long rows, long long len, int logSoftmax) {
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * len;
    float* yr = y + r * len;
    float m = -INFINITY;
    for (long long j = threadIdx.x; j < len; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = pfBlockReduce<true>(m);
    float s = 0.f;
    for (long long j = threadIdx.x; j < len; j += blockDim.x) s += __expf(xr[j] - m);
    s = pfBlockReduce<false>(s);
    if (logSoftmax) {
      const float ls = logf(s);
      for (long long j = threadIdx.x; j < len; j += blockDim.x) yr[j] = pfMaybeRound<kRound>(xr[j] - m - ls);
    } else {
      const float inv = 1.f / s;
      for (long long j = threadIdx.x; j < len; j += blockDim.x) yr[j] = pfMaybeRound<kRound>(__expf(xr[j] - m) * inv);
    }
  }
}
extern "C" __global__ void pf_softmax(const float* x, float* y, long long rows, long long len, int logSoftmax) {
  PF_KERNEL_PROLOGUE();
  pfSoftmax<false>(x, y, rows, len, logSoftmax);
}
extern "C" __global__ void pf_softmax_round(const float* x, float* y, long long rows, long long len, int logSoftmax) {
  PF_KERNEL_PROLOGUE();
  pfSoftmax<true>(x, y, rows, len, logSoftmax);
}

// LayerNormalization over the last `len` elements of each row (two-pass mean / variance); the
// _round variant rounds the result to FP16 precision like pf_softmax_round.
template <bool kRound>
__device__ __forceinline__ void pfLayernorm(const float* x, const float* gamma, const float* beta, float* y, long long rows, long long len,
                                            float eps) {
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * len;
    float* yr = y + r * len;
    float s = 0.f;
    for (long long j = threadIdx.x; j < len; j += blockDim.x) s += xr[j];
    const float mean = pfBlockReduce<false>(s) / (float)len;
    float v = 0.f;
    for (long long j = threadIdx.x; j < len; j += blockDim.x) {
      const float d = xr[j] - mean;
      v += d * d;
    }
    const float rstd = rsqrtf(pfBlockReduce<false>(v) / (float)len + eps);
    for (long long j = threadIdx.x; j < len; j += blockDim.x)
      yr[j] = pfMaybeRound<kRound>((xr[j] - mean) * rstd * (gamma ? gamma[j] : 1.f) + (beta ? beta[j] : 0.f));
  }
}
extern "C" __global__ void pf_layernorm(const float* x, const float* gamma, const float* beta, float* y, long long rows, long long len,
                                        float eps) {
  PF_KERNEL_PROLOGUE();
  pfLayernorm<false>(x, gamma, beta, y, rows, len, eps);
}
extern "C" __global__ void pf_layernorm_round(const float* x, const float* gamma, const float* beta, float* y, long long rows,
                                              long long len, float eps) {
  PF_KERNEL_PROLOGUE();
  pfLayernorm<true>(x, gamma, beta, y, rows, len, eps);
}

// LayerNormalization with FP16 storage on either side (the half values of FP16 plans, see
// src/core/gpu/half_layout.h): x and y are float or half per xHalf / yHalf; round rounds a float y.
__device__ __forceinline__ float pfLoadAny(const void* p, int half, long long i) {
  return half ? __half2float(static_cast<const __half*>(p)[i]) : static_cast<const float*>(p)[i];
}
extern "C" __global__ void pf_layernorm_io(const void* x, int xHalf, const float* gamma, const float* beta, void* y, int yHalf, long long rows,
                                           long long len, float eps, int round) {
  PF_KERNEL_PROLOGUE();
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    float s = 0.f;
    for (long long j = threadIdx.x; j < len; j += blockDim.x) s += pfLoadAny(x, xHalf, r * len + j);
    const float mean = pfBlockReduce<false>(s) / (float)len;
    float v = 0.f;
    for (long long j = threadIdx.x; j < len; j += blockDim.x) {
      const float d = pfLoadAny(x, xHalf, r * len + j) - mean;
      v += d * d;
    }
    const float rstd = rsqrtf(pfBlockReduce<false>(v) / (float)len + eps);
    for (long long j = threadIdx.x; j < len; j += blockDim.x) {
      const float o = (pfLoadAny(x, xHalf, r * len + j) - mean) * rstd * (gamma ? gamma[j] : 1.f) + (beta ? beta[j] : 0.f);
      if (yHalf) static_cast<__half*>(y)[r * len + j] = __float2half_rn(o);
      else static_cast<float*>(y)[r * len + j] = round ? __half2float(__float2half_rn(o)) : o;
    }
  }
}

// QuantizeLinear / DequantizeLinear with 8-bit integers (INT8 plans' activation Q/DQ pairs), per tensor
// (dim 1) or per axis (scale index (i / inner) % dim). The division runs in double and rounds half to
// even, as the CPU reference does, so both give the same integers.
__device__ __forceinline__ double pfZeroPoint(const unsigned char* zp, long long k, int isSigned) {
  return zp ? (isSigned ? (double)(signed char)zp[k] : (double)zp[k]) : 0.0;
}
extern "C" __global__ void pf_quantize_linear(const float* x, unsigned char* y, long long n, const float* scale, const unsigned char* zp,
                                              long long dim, long long inner, int isSigned) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    const long long k = dim > 1 ? (i / inner) % dim : 0;
    double v = rint((double)x[i] / (double)scale[k]) + pfZeroPoint(zp, k, isSigned);
    v = fmin(fmax(v, isSigned ? -128.0 : 0.0), isSigned ? 127.0 : 255.0);
    y[i] = (unsigned char)(int)v;
  }
}
extern "C" __global__ void pf_dequantize_linear(const unsigned char* x, float* y, long long n, const float* scale, const unsigned char* zp,
                                                long long dim, long long inner, int isSigned) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    const long long k = dim > 1 ? (i / inner) % dim : 0;
    const double q = isSigned ? (double)(signed char)x[i] : (double)x[i];
    y[i] = (float)(q - pfZeroPoint(zp, k, isSigned)) * scale[k];
  }
}

// In place y = act(y) on FP16 storage (the activation cuBLASLt's epilogue lacks, e.g. erf GELU).
extern "C" __global__ void pf_act_h(__half* y, long long n, int act, float alpha, float beta) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) y[i] = __float2half_rn(pfActivate(__half2float(y[i]), act, alpha, beta));
}

// IsNaN (float -> bool byte) and Where(cond, a, b) with numpy broadcasting of all three.
extern "C" __global__ void pf_isnan(const float* x, unsigned char* y, long long n) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) y[i] = isnan(x[i]) ? 1 : 0;
}
struct PfStrides3 {
  int rank;
  long long dims[PF_MAX_RANK];
  long long c[PF_MAX_RANK];
  long long a[PF_MAX_RANK];
  long long b[PF_MAX_RANK];
};
extern "C" __global__ void pf_where(const unsigned char* c, const float* a, const float* b, float* y, long long n, PfStrides3 s) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) {
    long long r = i, oc = 0, oa = 0, ob = 0;
    for (int d = s.rank - 1; d >= 0; --d) {
      const long long k = r % s.dims[d];
      r /= s.dims[d];
      oc += k * s.c[d];
      oa += k * s.a[d];
      ob += k * s.b[d];
    }
    y[i] = c[oc] ? a[oa] : b[ob];
  }
}

// Reformat kernels (half <-> float) for FP16 inputs / outputs.
extern "C" __global__ void pf_f16_to_f32(const __half* x, float* y, long long n) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) y[i] = __half2float(x[i]);
}
extern "C" __global__ void pf_f32_to_f16(const float* x, __half* y, long long n) {
  PF_KERNEL_PROLOGUE();
  PF_GRID_STRIDE(i, n) y[i] = __float2half_rn(x[i]);
}

// ---------------------------------------------------------------- cuBLASLt helpers
// im2col for the cuBLASLt convolution tactic: images [n0, n0 + nImg) of x (NCHW, one group) into
// col[img][c * KH * KW + kh * KW + kw][oh * OW + ow] (zero padding), the K x (OH*OW) operand of
// a per-image GEMM with the weights W[Co x K].
template <typename T>
__device__ __forceinline__ T pfStoreAs(float v);
template <>
__device__ __forceinline__ float pfStoreAs<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half pfStoreAs<__half>(float v) { return __float2half_rn(v); }

template <typename T>
__device__ __forceinline__ void pfIm2col(const float* x, T* col, int C, int H, int W, int KH, int KW, int sh, int sw, int ph, int pw,
                                         int dh, int dw, int OH, int OW, long long n0, long long nImg) {
  // The host keeps one chunk below 2^31 elements: 32-bit index math (64-bit division is slow).
  const unsigned P = (unsigned)OH * OW, K = (unsigned)C * KH * KW, total = (unsigned)(nImg * K * P);
  const float* xs = x + n0 * C * (long long)H * W;
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const unsigned p = i % P, r = i / P, k = r % K, img = r / K;
    const unsigned kw = k % KW, t = k / KW, kh = t % KH, c = t / KH;
    const int ow = (int)(p % OW), oh = (int)(p / OW);
    const int ih = oh * sh - ph + (int)kh * dh, iw = ow * sw - pw + (int)kw * dw;
    float v = 0.f;
    if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = xs[(((long long)img * C + c) * H + ih) * (long long)W + iw];
    col[i] = pfStoreAs<T>(v);
  }
}

extern "C" __global__ void pf_im2col(const float* x, float* col, int C, int H, int W, int KH, int KW, int sh, int sw, int ph, int pw,
                                     int dh, int dw, int OH, int OW, long long n0, long long nImg) {
  PF_KERNEL_PROLOGUE();
  pfIm2col<float>(x, col, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, n0, nImg);
}
// The same columns in FP16 (the FP16-operand cuBLASLt convolution tactic): half the bytes written
// here and read by the GEMM.
extern "C" __global__ void pf_im2col_h(const float* x, __half* col, int C, int H, int W, int KH, int KW, int sh, int sw, int ph,
                                       int pw, int dh, int dw, int OH, int OW, long long n0, long long nImg) {
  PF_KERNEL_PROLOGUE();
  pfIm2col<__half>(x, col, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, n0, nImg);
}

// The FP16 columns with 8 consecutive elements per thread: the index divisions once per 8 (the
// next coordinates by increments), one 16-byte store (col is 16-byte aligned, i0 a multiple of 8).
// The default for the FP16-operand tactic; PLANFORGE_GPU_IM2COL_H8=0 selects pf_im2col_h (A/B).
extern "C" __global__ void pf_im2col_h8(const float* x, __half* col, int C, int H, int W, int KH, int KW, int sh, int sw, int ph,
                                        int pw, int dh, int dw, int OH, int OW, long long n0, long long nImg) {
  PF_KERNEL_PROLOGUE();
  const unsigned P = (unsigned)OH * OW, K = (unsigned)C * KH * KW, total = (unsigned)(nImg * K * P);
  const unsigned groups = (total + 7) / 8;
  const float* xs = x + n0 * C * (long long)H * W;
  for (unsigned g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
    const unsigned i0 = g * 8;
    const unsigned p = i0 % P, r = i0 / P, k = r % K;
    unsigned img = r / K, kw = k % KW, t = k / KW, kh = t % KH, c = t / KH;
    int ow = (int)(p % OW), oh = (int)(p / OW);
    union {
      uint4 u;
      __half h[8];
    } v;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      float val = 0.f;
      const int ih = oh * sh - ph + (int)kh * dh, iw = ow * sw - pw + (int)kw * dw;
      if (i0 + j < total && ih >= 0 && ih < H && iw >= 0 && iw < W) val = xs[(((long long)img * C + c) * H + ih) * (long long)W + iw];
      v.h[j] = __float2half_rn(val);
      if (++ow == OW) {  // next element: ow, then oh, kw, kh, c, image
        ow = 0;
        if (++oh == OH) {
          oh = 0;
          if (++kw == (unsigned)KW) {
            kw = 0;
            if (++kh == (unsigned)KH) {
              kh = 0;
              if (++c == (unsigned)C) {
                c = 0;
                ++img;
              }
            }
          }
        }
      }
    }
    if (i0 + 8 <= total) {
      *reinterpret_cast<uint4*>(col + i0) = v.u;
    } else {
      for (unsigned j = 0; i0 + j < total; ++j) col[i0 + j] = v.h[j];
    }
  }
}

// FP32 -> FP16 operand cast for the FP16-operand cuBLASLt tactics: 16-byte loads, 8-byte stores
// when x / y are 16 / 8-byte aligned (arena offsets and the scratch buffer are), else element-wise.
extern "C" __global__ void pf_cast_f16(const float* x, __half* y, long long n) {
  PF_KERNEL_PROLOGUE();
  if ((reinterpret_cast<unsigned long long>(x) & 15) || (reinterpret_cast<unsigned long long>(y) & 7)) {
    PF_GRID_STRIDE(i, n) y[i] = __float2half_rn(x[i]);
    return;
  }
  const long long n4 = n / 4;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  __half2* y2 = reinterpret_cast<__half2*>(y);
  PF_GRID_STRIDE(i, n4) {
    const float4 v = x4[i];
    y2[2 * i] = __floats2half2_rn(v.x, v.y);
    y2[2 * i + 1] = __floats2half2_rn(v.z, v.w);
  }
  PF_GRID_STRIDE(j, n - 4 * n4) y[4 * n4 + j] = __float2half_rn(x[4 * n4 + j]);
}

// The same columns with a 2-D grid: y over the rows (image, c, kh, kw), x over the output pixels,
// so the index divisions are per row (PLANFORGE_GPU_IM2COL_ROWS=1 selects it, for A/B runs).
extern "C" __global__ void pf_im2col_rows(const float* x, float* col, int C, int H, int W, int KH, int KW, int sh, int sw, int ph,
                                          int pw, int dh, int dw, int OH, int OW, long long n0, long long nImg) {
  PF_KERNEL_PROLOGUE();
  const unsigned P = (unsigned)OH * OW, K = (unsigned)C * KH * KW, rows = (unsigned)(nImg * K);
  const float* xs = x + n0 * C * (long long)H * W;
  for (unsigned row = blockIdx.y; row < rows; row += gridDim.y) {
    const unsigned k = row % K, img = row / K;
    const int kw = (int)(k % KW), t = (int)(k / KW), kh = t % KH, c = t / KH;
    const float* src = xs + ((long long)img * C + c) * H * (long long)W;
    float* dst = col + (size_t)row * P;
    const int ih0 = kh * dh - ph, iw0 = kw * dw - pw;
    for (unsigned p = blockIdx.x * blockDim.x + threadIdx.x; p < P; p += gridDim.x * blockDim.x) {
      const int oh = (int)(p / OW), ow = (int)(p - oh * OW);
      const int ih = oh * sh + ih0, iw = ow * sw + iw0;
      dst[p] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? src[ih * W + iw] : 0.f;
    }
  }
}

// In-place epilogue after a cuBLASLt product whose bias is per channel of an NCHW output:
// y = act(y + bias[(i / hw) % channels]), then rounded to FP16 precision when `round` (the FP16
// plan's RoundToFp16 of this output, folded in). bias may be null (GEMMs: channels = 1).
extern "C" __global__ void pf_bias_act(float* y, const float* bias, long long n, long long channels, long long hw, int act, float alpha,
                                       float beta, int round) {
  PF_KERNEL_PROLOGUE();
  if (n < 0x7fffffffLL) {
    const unsigned un = (unsigned)n, uc = (unsigned)channels, uhw = (unsigned)hw;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += gridDim.x * blockDim.x) {
      float v = y[i];
      if (bias) v += bias[(i / uhw) % uc];
      v = pfActivate(v, act, alpha, beta);
      if (round) v = __half2float(__float2half_rn(v));
      y[i] = v;
    }
    return;
  }
  PF_GRID_STRIDE(i, n) {
    float v = y[i];
    if (bias) v += bias[(i / hw) % channels];
    v = pfActivate(v, act, alpha, beta);
    if (round) v = __half2float(__float2half_rn(v));
    y[i] = v;
  }
}
