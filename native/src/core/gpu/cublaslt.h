// cuBLASLt as an optional tactic source, opened at run time with dlopen (never linked): the CPU
// build machines and CI have no CUDA libraries at all, and a GPU machine without the CUDA toolkit
// may lack it too. When it is missing the cuBLASLt tactics are simply not candidates, and a plan
// tuned to use them falls back to our own kernels (with a warning).
//
// There are no cuBLAS headers on the build machines: the opaque handle types, the few enum values
// and the structs used here are declared below with the numeric values of the CUDA 13 headers
// (cublasLt.h, cublas_api.h, library_types.h). They have been stable since CUDA 11.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda_driver.h"

namespace planforge {
namespace gpu {

namespace lt {
using Status = int;  // cublasStatus_t; 0 = CUBLAS_STATUS_SUCCESS
using Handle = struct cublasLtContext*;
using MatmulDesc = struct cublasLtMatmulDescOpaque_t*;
using MatrixLayout = struct cublasLtMatrixLayoutOpaque_t*;
using MatmulPreference = struct cublasLtMatmulPreferenceOpaque_t*;

struct MatmulAlgo {  // cublasLtMatmulAlgo_t
  uint64_t data[8];
};
struct HeuristicResult {  // cublasLtMatmulHeuristicResult_t
  MatmulAlgo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};
static_assert(sizeof(HeuristicResult) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes");

// cudaDataType_t
constexpr int kR32F = 0;
constexpr int kR16F = 2;
// cublasComputeType_t
constexpr int kCompute32F = 68;
constexpr int kCompute32FFast16F = 74;
constexpr int kCompute32FFastTF32 = 77;
// cublasOperation_t
constexpr int32_t kOpN = 0;
constexpr int32_t kOpT = 1;
// cublasLtMatmulDescAttributes_t
constexpr int kDescTransA = 3;
constexpr int kDescTransB = 4;
constexpr int kDescEpilogue = 7;
constexpr int kDescBiasPointer = 8;
// cublasLtEpilogue_t (uint32_t)
constexpr uint32_t kEpiDefault = 1;
constexpr uint32_t kEpiRelu = 2;
constexpr uint32_t kEpiBias = 4;
constexpr uint32_t kEpiReluBias = 6;
constexpr uint32_t kEpiGelu = 32;  // tanh approximation
constexpr uint32_t kEpiGeluBias = 36;
// cublasLtMatrixLayoutAttribute_t
constexpr int kLayoutBatchCount = 5;           // int32_t
constexpr int kLayoutStridedBatchOffset = 6;   // int64_t (elements)
// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspaceBytes = 1;      // uint64_t
}  // namespace lt

struct CublasLtApi {
  std::string path;      // the library that was opened
  size_t version = 0;    // cublasLtGetVersion(): 130000 + ... for CUDA 13
  lt::Status (*cublasLtCreate)(lt::Handle*);
  lt::Status (*cublasLtDestroy)(lt::Handle);
  size_t (*cublasLtGetVersion)();
  lt::Status (*cublasLtMatmulDescCreate)(lt::MatmulDesc*, int computeType, int scaleType);
  lt::Status (*cublasLtMatmulDescDestroy)(lt::MatmulDesc);
  lt::Status (*cublasLtMatmulDescSetAttribute)(lt::MatmulDesc, int attr, const void* buf, size_t size);
  lt::Status (*cublasLtMatrixLayoutCreate)(lt::MatrixLayout*, int type, uint64_t rows, uint64_t cols, int64_t ld);
  lt::Status (*cublasLtMatrixLayoutDestroy)(lt::MatrixLayout);
  lt::Status (*cublasLtMatrixLayoutSetAttribute)(lt::MatrixLayout, int attr, const void* buf, size_t size);
  lt::Status (*cublasLtMatmulPreferenceCreate)(lt::MatmulPreference*);
  lt::Status (*cublasLtMatmulPreferenceDestroy)(lt::MatmulPreference);
  lt::Status (*cublasLtMatmulPreferenceSetAttribute)(lt::MatmulPreference, int attr, const void* buf, size_t size);
  lt::Status (*cublasLtMatmulAlgoGetHeuristic)(lt::Handle, lt::MatmulDesc, lt::MatrixLayout, lt::MatrixLayout, lt::MatrixLayout,
                                               lt::MatrixLayout, lt::MatmulPreference, int requested, lt::HeuristicResult* results,
                                               int* returned);
  lt::Status (*cublasLtMatmul)(lt::Handle, lt::MatmulDesc, const void* alpha, const void* A, lt::MatrixLayout Adesc, const void* B,
                               lt::MatrixLayout Bdesc, const void* beta, const void* C, lt::MatrixLayout Cdesc, void* D,
                               lt::MatrixLayout Ddesc, const lt::MatmulAlgo* algo, void* workspace, size_t workspaceSize,
                               CUstream stream);
};

// The library names tried, in order: $PLANFORGE_CUBLASLT (a path) when set, libcublasLt.so.13,
// /usr/local/cuda/lib64/libcublasLt.so.13, libcublasLt.so.12, libcublasLt.so (and the same under
// /usr/local/cuda/lib64). PLANFORGE_CUBLASLT=0 disables cuBLASLt (A/B runs, fallback tests).
std::vector<std::string> cublasLtLibraryCandidates();

// Opens one library and resolves every entry point; nullptr (and *why) when it cannot.
std::unique_ptr<CublasLtApi> loadCublasLt(const std::string& libraryName, std::string* why = nullptr);

// The process-wide cuBLASLt (loaded once, thread-safe); nullptr when absent.
const CublasLtApi* cublasLt();
bool cublasLtAvailable();
std::string cublasLtUnavailableReason();  // "" when available
// Tests only: pretend the library is absent (true) or go back to what was found (false).
void setCublasLtDisabledForTesting(bool disabled);

// One matrix product, row-major view as our kernels see it:
//   Y[b] (M x N, leading dim ldy) = act(alpha * op(A[b]) op(B[b]) + beta * C[b] + bias[n])
// A is M x K (transA: stored K x M), B is K x N (transB: stored N x K). Strides are in elements;
// a batch stride of 0 broadcasts that operand. C (may be 0) has Y's layout unless ldc / strideC say
// otherwise (strideC = 0: one C matrix for every batch entry, e.g. a convolution's per-channel bias
// broadcast over the pixels of one image). bias (may be 0) has N floats. C, Y and bias are FP32 in memory; A and B are FP32 (abType = lt::kR32F; computeType
// lt::kCompute32F or lt::kCompute32FFast16F) or FP16 (abType = lt::kR16F: real FP16 tensor-core
// operands, computeType lt::kCompute32F = FP32 accumulation, no fallback to another compute type).
struct LtGemmDesc {
  int64_t M = 0, N = 0, K = 0;
  bool transA = false, transB = false;
  int64_t lda = 0, ldb = 0, ldy = 0;
  int64_t batch = 1;
  int64_t strideA = 0, strideB = 0, strideY = 0;
  int64_t ldc = 0;       // 0: ldy
  int64_t strideC = -1;  // -1: strideY; 0 broadcasts C over the batch
  CUdeviceptr A = 0, B = 0, C = 0, Y = 0, bias = 0;
  float alpha = 1.f, beta = 0.f;
  uint32_t epilogue = lt::kEpiDefault;  // kEpiBias* require bias
  int computeType = lt::kCompute32F;
  int abType = lt::kR32F;
  int yType = lt::kR32F;  // C and Y (and the bias): lt::kR16F for FP16 activations (half_layout.h)
  int requestAlgos = 1;  // heuristic results asked for; >1 lets the caller time them (selectAlgo)
};

// A prepared cuBLASLt call (descriptors + the heuristic's best algorithm). Launchable into a
// stream (and capturable in a CUDA graph: the workspace is ours, cuBLASLt allocates nothing).
class LtMatmul {
 public:
  ~LtMatmul();
  void operator()(CUstream stream) const;
  size_t workspaceNeeded() const { return workspaceNeeded_; }
  int computeType() const { return computeType_; }  // the one used (fp16 plans may fall back to TF32 / FP32)
  int abType() const { return abType_; }            // lt::kR32F or lt::kR16F operands
  // The algorithms the heuristic returned (best first, at most LtGemmDesc::requestAlgos); the
  // first is used unless selectAlgo picks another (the executor times them when asked to).
  int algoCount() const { return static_cast<int>(algos_.size()); }
  void selectAlgo(int i) {
    algo_ = algos_.at(static_cast<size_t>(i)).first;
    workspaceNeeded_ = algos_.at(static_cast<size_t>(i)).second;
  }

  // nullptr when cuBLASLt has no algorithm for it (or is absent); *why says why.
  static std::shared_ptr<LtMatmul> create(lt::Handle handle, const LtGemmDesc& d, CUdeviceptr workspace, size_t workspaceBytes,
                                          std::string* why = nullptr);

 private:
  LtMatmul() = default;
  static std::shared_ptr<LtMatmul> createOne(lt::Handle handle, const LtGemmDesc& d, CUdeviceptr workspace, size_t workspaceBytes,
                                             std::string* why);
  int computeType_ = 0;
  int abType_ = lt::kR32F;
  std::vector<std::pair<lt::MatmulAlgo, size_t>> algos_;
  const CublasLtApi* api_ = nullptr;
  lt::Handle handle_ = nullptr;
  lt::MatmulDesc desc_ = nullptr;
  lt::MatrixLayout a_ = nullptr, b_ = nullptr, c_ = nullptr, d_ = nullptr;
  lt::MatmulAlgo algo_{};
  float alpha_ = 1.f, beta_ = 0.f;
  CUdeviceptr A_ = 0, B_ = 0, C_ = 0, D_ = 0, workspace_ = 0;
  size_t workspaceBytes_ = 0, workspaceNeeded_ = 0;
};

}  // namespace gpu
}  // namespace planforge
