// Host mirrors of the kernel parameter structs in native/kernels/*.cuh (same field order and
// types; device pointers are CUdeviceptr). Op codes match PfUnary / PfBinary there.
#pragma once
#include <cstdint>

namespace planforge {
namespace gpu {

constexpr int kMaxRank = 6;

enum UnaryOp : int {
  kUnaryCopy = 0, kUnaryRelu = 1, kUnarySigmoid = 2, kUnaryTanh = 3, kUnaryHardSigmoid = 4, kUnaryHardSwish = 5,
  kUnaryClip = 6, kUnaryLeakyRelu = 7, kUnaryGelu = 8, kUnaryGeluTanh = 9, kUnarySilu = 10, kUnaryErf = 11,
  kUnaryExp = 12, kUnarySqrt = 13, kUnaryNeg = 14, kUnaryAbs = 15, kUnaryReciprocal = 16, kUnaryRoundFp16 = 17,
  kUnaryLog = 18,
};
enum BinaryOp : int { kBinAdd = 0, kBinSub = 1, kBinMul = 2, kBinDiv = 3, kBinPow = 4, kBinMax = 5, kBinMin = 6, kBinPRelu = 7 };

struct PfEpilogue {
  uint64_t bias;
  long long biasStrideM, biasStrideN;
  uint64_t residual;
  float alpha;
  float beta;
  int act;
  float actAlpha, actBeta;
};

struct PfGemmParams {
  uint64_t A, B, Y;
  long long M, N, K;
  long long sAm, sAk, sBk, sBn;
  long long batchA, batchB;
  PfEpilogue epi;
  uint64_t workspace;  // split-K partial sums (splits > 1)
  long long kChunk;
  int splits;          // 1 = no split; never 0
  int pad_;
};

struct PfConvParams {
  uint64_t input, weight, output;
  int N, C, H, W, Co, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, groups;
  PfEpilogue epi;
  uint64_t workspace;
  long long kChunk;
  int splits;
  int pad_;
};

struct PfConvNhwcParams {
  uint64_t input, weight, bias, residual, output, workspace;
  int N, H, W, C, Co, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
  int M, K;
  int kTilesPerSplit;
  int act;
  float actAlpha, actBeta;
  int residualNchw, outputNchw;
  int roundOutput;
  int splits;
  int pad_;
};

struct PfStrides {
  int rank;
  long long dims[kMaxRank];
  long long a[kMaxRank];
  long long b[kMaxRank];
};

struct PfStrides3 {
  int rank;
  long long dims[kMaxRank];
  long long c[kMaxRank];
  long long a[kMaxRank];
  long long b[kMaxRank];
};

struct PfAttentionParams {
  uint64_t q, k, v, mask, y;
  long long sqB, sqS, skB, skS, svB, svS, syB, syS;
  long long mB, mH, mQ, mK;
  int B, H, Sq, Skv, D;
  float scale;
  int nanToZero;
  int roundOutput;
  int qkvHalf, yHalf;
};

static_assert(sizeof(PfEpilogue) == 56, "PfEpilogue layout must match kernels/common.cuh");
static_assert(sizeof(PfGemmParams) == 24 + 24 + 32 + 16 + 56 + 24, "PfGemmParams layout must match kernels/gemm_conv.cuh");
static_assert(sizeof(PfConvParams) == 24 + 64 + 56 + 24, "PfConvParams layout must match kernels/gemm_conv.cuh");
static_assert(sizeof(PfConvNhwcParams) == 48 + 18 * 4 + 4 + 8 + 20, "PfConvNhwcParams layout must match kernels/conv_nhwc.cuh");
static_assert(sizeof(PfStrides) == 8 + 3 * 8 * kMaxRank, "PfStrides layout must match kernels/planforge.cu");
static_assert(sizeof(PfStrides3) == 8 + 4 * 8 * kMaxRank, "PfStrides3 layout must match kernels/planforge.cu");
static_assert(sizeof(PfAttentionParams) == 5 * 8 + 12 * 8 + 10 * 4, "PfAttentionParams layout must match kernels/attention.cuh");

}  // namespace gpu
}  // namespace planforge
