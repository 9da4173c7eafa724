// Tactics: which GPU kernel implements a layer. Cross-compiled plans (no GPU at build time) get a
// deterministic heuristic choice and header.tuned = false; autotuning on a matching GPU would
// replace the choice with the fastest measured candidate.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../graph.h"
#include "../plan/plan.h"

namespace planforge {
namespace gpu {

// Stored in the plan's layer table (Node::tactic); 0 means "no GPU kernel: CPU reference".
enum Tactic : int64_t {
  kTacticReference = 0,        // CPU reference kernel (host round trip)
  kTacticElementwise = 1,      // pf_unary / pf_binary / pf_channel_affine
  kTacticAlias = 2,            // Reshape & co.: no kernel, the output shares the input's memory
  kTacticCopy = 3,             // pf_copy_nd / pf_gather (Transpose, Concat, Gather)
  kTacticConvF32 = 10,         // implicit-GEMM convolution, FP32 SIMT
  kTacticConvF16TensorCore = 11,  // implicit-GEMM convolution, FP16 wmma, FP32 accumulation
  kTacticConvDepthwise = 12,   // direct depthwise convolution
  kTacticConvCublasLt = 13,    // cuBLASLt GEMM per image (1x1 stride-1 convs directly, others after pf_im2col)
  kTacticConvCublasLtF16 = 14,  // the same with FP16 operands (FP16 weights, FP16 im2col / cast input), FP32 accumulation
  // Implicit-GEMM convolution on NHWC FP16 activations (mma.sync tensor cores, FP32 accumulation,
  // fused epilogue, split-K for small grids), one tactic per tile shape (kernels/conv_nhwc.cuh):
  kTacticConvNhwc128x128 = 15,
  kTacticConvNhwc256x128 = 16,
  kTacticConvNhwc128x64 = 17,
  kTacticConvNhwc64x64 = 18,
  // An NHWC FP16 1 x 1 convolution as one cuBLASLt GEMM over the pixels it reads (strided ones
  // packed first; FP16 in and out, bias + ReLU in cuBLASLt's epilogue, the residual as C): Hopper's
  // wgmma kernels. A cuBLASLt tactic (autotuned only; a tile where the library is missing) and an
  // NHWC one (chain member).
  kTacticConvNhwcCublasLt = 19,
  kTacticGemmF32 = 20,         // tiled GEMM, FP32 SIMT
  kTacticGemmF16TensorCore = 21,  // tiled GEMM, FP16 wmma, FP32 accumulation
  kTacticGemmCublasLt = 22,    // cuBLASLt (strided batched for MatMul), epilogue fused where cuBLASLt has it
  kTacticGemmCublasLtF16 = 23,  // the same with FP16 operands (FP16 weights, activations cast once), FP32 accumulation
  // GEMM / MatMul with FP16 weights on the NHWC convolution kernels (a 1 x 1 convolution over the
  // rows; input cast to FP16, FP32 row-major output), one per tile shape:
  kTacticGemmNhwc128x128 = 24,
  kTacticGemmNhwc256x128 = 25,
  kTacticGemmNhwc128x64 = 26,
  kTacticGemmNhwc64x64 = 27,
  // A 1 x 1 convolution of one-pixel images (SE fc layers at batch 1) as one matrix-vector kernel with
  // the input / output roundings fused (pf_conv1x1_vector). Autotuned only (tuningCandidates): the
  // shapes that make it pay are known at run time.
  kTacticConvVector = 28,
  // NHWC FP16 convolutions on Hopper's warpgroup MMA (wgmma, kernels/conv_nhwc_wgmma.cuh): chain
  // members (FP16 NHWC in and out) over a multiple of 64 input channels. Only sm_90a cubins have
  // the kernels; autotuned only (tuningCandidates); a tile where the kernel is missing.
  kTacticConvNhwcWgmma128x128 = 40,
  kTacticConvNhwcWgmma128x64 = 41,
  kTacticConvNhwcWgmma128x128Overlap = 42,  // wgmma groups overlapped with the next tile's loads and barrier
  kTacticConvNhwcWgmma128x64Overlap = 43,
  kTacticPool = 30,            // pf_pool2d
  kTacticRowReduce = 31,       // pf_row_mean / pf_softmax / pf_layernorm
};

const char* tacticName(int64_t tactic);  // "conv_f16_tensorcore", ...; "unknown" otherwise

// Ops the GPU executor can lower (attribute-level limits are checked at run time; a layer it
// cannot lower runs on the CPU reference path).
bool gpuHasKernelFor(const Node& n);

// Candidate tactics for a layer, best guess first (the autotuner would time all of them).
std::vector<int64_t> candidateTactics(const Graph& g, const Node& n);

// cuBLASLt tactics exist only where libcublasLt is found at run time (see cublaslt.h). They are
// never heuristic choices (a cross-compiled plan cannot know whether its target has the library)
// and never in candidateTactics(); the autotuner adds them with tuningCandidates().
bool isCublasLtTactic(int64_t tactic);
// The cuBLASLt tactic a layer could use (attribute level: GEMM / MatMul, or a one-group 2-D
// convolution that is not depthwise), or kTacticReference when none. FP32 operands.
int64_t cublasLtTacticFor(const Graph& g, const Node& n);
// Every cuBLASLt tactic of the layer: cublasLtTacticFor() and, for FP16 / INT8 layers (never FP32
// ones: FP32 plans stay exact), its FP16-operand variant (kTacticConvCublasLtF16 / kTacticGemmCublasLtF16).
std::vector<int64_t> cublasLtTacticsFor(const Graph& g, const Node& n);
// The FP16-operand cuBLASLt tactic of the layer, or kTacticReference (FP32 layers, other ops).
int64_t cublasLtF16TacticFor(const Graph& g, const Node& n);
bool isCublasLtF16Tactic(int64_t tactic);
// The convolutions kTacticConvVector may take (attribute level): one group, 1 x 1 weights (a 4-D
// initializer), stride 1, no padding; it runs only where the input is one pixel per image.
bool convVectorEligible(const Graph& g, const Node& n);
// What the autotuner times: candidateTactics(), kTacticConvVector and the wgmma tiles where
// eligible, and the cuBLASLt tactics when the library is present.
std::vector<int64_t> tuningCandidates(const Graph& g, const Node& n, bool cublasLtPresent);

// The tactic a layer runs with on this machine: the planned one when it is one of the layer's
// kernels and available here, else the heuristic one (*fellBack = true when a cuBLASLt tactic
// had to be replaced because the library is missing: the executor warns, it never fails).
int64_t runtimeTactic(const Graph& g, const Node& n, int64_t planned, bool cublasLtPresent, bool* fellBack = nullptr);

// Convolution epilogues on cuBLASLt (both conv tactics). A cuBLASLt convolution is a GEMM in NCHW
// (D = Y^T per image, HW x Co column-major), so cuBLASLt's bias epilogue would be per pixel. For a
// layer with a bias and no residual input, the bias is passed as C with beta = 1 instead: a Co x HW
// matrix (the bias broadcast over the pixels of one image) uploaded once per executor and shared by
// the images (batch stride 0), and ReLU / tanh-GELU become cuBLASLt's epilogue (applied after the
// beta * C addition). What is left (other activations, a bias with a residual, a bias matrix over
// the bound, the folded RoundToFp16) stays in the pf_bias_act pass, which is skipped when nothing is.
constexpr size_t kConvBiasMatrixMaxBytes = size_t(8) << 20;  // Co x HW x 4 bytes, per layer
struct ConvLtEpilogue {
  bool biasAsC = false;  // the bias goes in as C (beta = 1)
  int ltActivation = 0;  // activation applied by cuBLASLt: 0 none (or left to the pass), kUnaryRelu, kUnaryGeluTanh
  bool passBias = false, passActivation = false;  // left to pf_bias_act
  bool needsPass = false;  // pf_bias_act runs (passBias || passActivation || round)
};
// act: the layer's kUnary* activation (kUnaryCopy = none). enabled = false gives the old epilogue
// (bias + activation always in the pass). On by default; PLANFORGE_GPU_CONV_EPILOGUE=0 turns it off (A/B runs).
ConvLtEpilogue planConvLtEpilogue(bool hasBias, bool hasResidual, int act, bool round, int64_t Co, int64_t HW, bool enabled,
                                  size_t maxBiasBytes = kConvBiasMatrixMaxBytes);

// FP16 plans round each convolution's output (its RoundToFp16, folded into the layer). When the one
// reader of that RoundToFp16 is a one-group 2-D FP16 convolution that reads it as its input 0, the
// rounding can be left to the reader: the FP16-operand cuBLASLt conv tactic rounds its input anyway
// (its FP16 im2col / cast, round-to-nearest-even, the same as RoundToFp16) and any other tactic of the
// reader rounds the input in place first (idempotent). Returns, for each such producer (node index),
// the RoundToFp16's output name. The producer must also be one whose rounding the executor folds
// (single reader of its output, not a graph output); the executor also keeps the rounding in the
// producer where its epilogue pass stays anyway (planConvLtEpilogue(.., round = false).needsPass:
// a residual, an activation cuBLASLt lacks, a bias matrix over the bound).
std::vector<std::pair<size_t, std::string>> deferrableConvRounds(const Graph& g);

// NHWC FP16 convolutions (kTacticConvNhwc*). A convolution is eligible when it is an FP16 / INT8
// one-group 2-D convolution whose weights are a 4-D initializer with a multiple of 8 output
// channels (the kernels store channel pairs and 16-byte chunks; input channels are padded to 8)
// and whose fused activation the epilogue has. Eligible convolutions list these tactics first, so
// the heuristic choice of a cross-compiled FP16 plan is the 128 x 128 tile.
bool nhwcConvEligible(const Graph& g, const Node& n);
// Every NHWC convolution tactic: the tiles, kTacticConvNhwcCublasLt and the wgmma tiles.
bool isNhwcConvTactic(int64_t tactic);
// The convolutions kTacticConvNhwcCublasLt may take (attribute level): NHWC-eligible, 1 x 1 weights
// over a multiple of 8 input channels, any stride, no padding, no activation or ReLU (the only one
// of cuBLASLt's epilogues an NHWC convolution has). Only NHWC chain members (FP16 NHWC input and
// output) run on it; others fall back to the heuristic tile.
bool nhwcCublasLtConvEligible(const Graph& g, const Node& n);
// The convolutions the wgmma tactics may take (attribute level): NHWC-eligible with a multiple of
// 64 input channels (a 64-wide K tile is then one kernel position). They run only as NHWC chain
// members with an FP16 NHWC residual (if any), where the cubin has the kernels (sm_90a).
bool nhwcWgmmaConvEligible(const Graph& g, const Node& n);
struct NhwcWgmmaTile {
  int64_t tactic;
  const char* kernel;
  int bm, bn, threads, stages;
  bool overlap;  // wgmma groups overlapped with the next K tile's loads (prefetch distance stages - 2)
  int blocksPerSm;  // on an H100 (shared memory; registers: __launch_bounds__)
  int sharedBytes() const { return stages * (bm + bn) * 128 + 1024; }  // 128-byte rows + 1 KiB to align the swizzle atoms
};
const std::vector<NhwcWgmmaTile>& nhwcWgmmaTiles();
const NhwcWgmmaTile* nhwcWgmmaTile(int64_t tactic);
// GEMMs on the same kernels: FP16 / INT8 Gemm / MatMul (+ Fused*) whose weights are a 2-D
// initializer, K and N multiples of 8, Gemm without transA and with alpha = beta = 1, a bias of N
// values (no broadcast mask), an activation the epilogue has.
bool nhwcGemmEligible(const Graph& g, const Node& n);
bool isNhwcGemmTactic(int64_t tactic);
struct NhwcConvTile {
  int64_t tactic;      // the convolution tactic
  int64_t gemmTactic;  // the GEMM tactic on the same kernel
  const char* kernel;    // cubin entry point
  const char* kernelC4;  // the same tile for inputs of at most 4 channels (stems: C padded to 4, not 8)
  int bm, bn, threads, stages;
  int registers;       // per thread (ptxas, sm_90), for the occupancy estimate
  double efficiency;   // relative tensor-core throughput of a full tile (larger tiles reuse more)
  int sharedBytes() const { return stages * (bm + bn) * 80; }  // (BK + 8) halves per row
};
const std::vector<NhwcConvTile>& nhwcConvTiles();
const NhwcConvTile* nhwcConvTile(int64_t tactic);  // by either tactic id
// Blocks of the tile one SM holds at once (shared memory, registers, threads).
int nhwcBlocksPerSm(const NhwcConvTile& t, int sm);
// Split-K slices for a tile on a GPU with `multiprocessors` SMs: about two waves of blocks when
// the grid is small, each slice at least 4 K tiles (128 of K), at most 16 slices.
int nhwcSplits(const NhwcConvTile& t, long long M, long long Co, long long K, int multiprocessors, int* kTilesPerSplit);
// The tile (its convolution tactic) an untuned plan runs a convolution or GEMM with (M = output pixels of the batch, Co output
// channels, K = KH * KW * padded input channels): the smallest estimated time over the tiles, from
// waves x blocks per SM x tile work / tile efficiency (+ the split-K reduction). Deterministic.
int64_t nhwcHeuristicTile(long long M, long long Co, long long K, int sm, int multiprocessors);

// Deterministic heuristic: the first candidate (FP16 tensor cores for fp16/int8 layers, FP32
// otherwise; depthwise kernel for one-input-channel groups).
int64_t heuristicTactic(const Graph& g, const Node& n);

// Cross mode: sets every layer's tactic heuristically, marks the plan untuned and attaches the
// cubin of the plan's SM. Called by the builder after precision assignment.
void prepareGpuPlan(Plan& plan);

}  // namespace gpu
}  // namespace planforge
