#include "gpu_executor.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <set>

#include "../executor.h"
#include "../half.h"
#include "../op_registry.h"
#include "cubin.h"
#include "cublaslt.h"
#include "cuda_driver.h"
#include "kernel_abi.h"
#include "memory_planner.h"
#include "half_layout.h"
#include "nhwc_layout.h"
#include "tactics.h"
#include "../version.h"

namespace planforge {
namespace gpu {

namespace {

constexpr int kCaptureModeThreadLocal = 1;  // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
constexpr unsigned kStreamNonBlocking = 1;  // CU_STREAM_NON_BLOCKING

const char* const kKernelNames[] = {"pf_unary",   "pf_binary", "pf_copy_nd",    "pf_gather",     "pf_channel_affine",
                                    "pf_pool2d",  "pf_row_mean", "pf_softmax",  "pf_layernorm",  "pf_gemm_f32",
                                    "pf_gemm_f16tc", "pf_conv_f32", "pf_conv_f16tc", "pf_conv_depthwise",
                                    "pf_gemm_splitk_reduce", "pf_conv_splitk_reduce", "pf_isnan", "pf_where"};
// Kernels of the cuBLASLt convolution tactic: optional, so plans carrying an older cubin still load
// (their convolutions then stay on our kernels).
const char* const kOptionalKernelNames[] = {"pf_im2col", "pf_im2col_rows", "pf_bias_act", "pf_im2col_h", "pf_im2col_h8", "pf_cast_f16",
                                            "pf_softmax_round", "pf_layernorm_round", "pf_conv_depthwise_round", "pf_attention",
                                            "pf_attention_f16_d32", "pf_attention_f16_d64", "pf_attention_f16_d128",
                                            "pf_layernorm_io", "pf_act_h", "pf_quantize_linear", "pf_dequantize_linear", "pf_programmatic_launch_v1",
                                            "pf_subsample_nhwc16", "pf_conv1x1_vector",
                                            "pf_binary_round", "pf_row_mean_round", "pf_copy_nd_bytes", "pf_gather_bytes", "pf_cast",
                                            "pf_logical"};
// The NHWC FP16 convolution path (kernels/conv_nhwc.cuh; the tile kernels are in tactics.cc):
// every one must be present (plans with older cubins keep their convolutions in NCHW).
const char* const kNhwcKernelNames[] = {"pf_conv_nhwc_splitk_reduce", "pf_nchw_to_nhwc16", "pf_maxpool_nhwc16", "pf_gap_nhwc16"};
constexpr int kFuncAttributeMaxDynamicSharedBytes = 8;  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES

constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;  // cuBLASLt workspace, one per executor (PLANFORGE_CUBLASLT_WORKSPACE_MB)
constexpr size_t kF16ScratchCap = size_t(1) << 30;      // FP16 operand casts of one cuBLASLt GEMM
constexpr size_t kColBytesCap = size_t(128) << 20;      // im2col buffer of the cuBLASLt conv tactic, per specialization

// PLANFORGE_GPU_SPLITK=0: no split-K (A/B runs), for our NCHW and NHWC kernels alike.
bool splitKDisabled() {
  static const bool disabled = [] {
    const char* e = std::getenv("PLANFORGE_GPU_SPLITK");
    return e && std::string(e) == "0";
  }();
  return disabled;
}

const std::set<std::string>& nondeterministicOps() {
  static const std::set<std::string> s{"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"};
  return s;
}

bool isFloatType(DataType t) { return t == DataType::kFloat || t == DataType::kFloat16 || t == DataType::kBFloat16 || t == DataType::kDouble; }

Shape contiguousStrides(const Shape& s) {
  Shape st(s.size(), 1);
  for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

int64_t normAxis(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

// Float copy of a host tensor for upload (float16 / bfloat16 / double -> float32).
std::vector<float> toFloatVector(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  switch (t.dtype) {
    case DataType::kFloat: std::memcpy(v.data(), t.bytes.data(), v.size() * 4); break;
    case DataType::kFloat16: for (size_t i = 0; i < v.size(); ++i) v[i] = halfToFloat(t.data<uint16_t>()[i]); break;
    case DataType::kBFloat16: for (size_t i = 0; i < v.size(); ++i) v[i] = bfloat16ToFloat(t.data<uint16_t>()[i]); break;
    case DataType::kDouble: for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data<double>()[i]); break;
    default: throw BuildError(ErrorCode::kInternal, "not a float tensor");
  }
  return v;
}

struct Launch {
  CUfunction fn = nullptr;
  std::shared_ptr<LtMatmul> lt;  // a cuBLASLt call instead of a kernel
  unsigned grid[3] = {1, 1, 1};
  unsigned block[3] = {256, 1, 1};
  unsigned shared = 0;  // dynamic shared memory bytes
  // Argument storage: each argument's bytes, 8-byte aligned slots.
  std::vector<std::vector<uint64_t>> args;
  template <typename T>
  void arg(const T& v) {
    std::vector<uint64_t> slot((sizeof(T) + 7) / 8);
    std::memcpy(slot.data(), &v, sizeof(T));
    args.push_back(std::move(slot));
  }
  // programmatic: launched with programmatic stream serialization (kernels/common.cuh,
  // PF_KERNEL_PROLOGUE), only for our kernels of a cubin that has the prologue.
  void operator()(CUstream s, bool programmatic = false) const {
    if (lt) {
      (*lt)(s);
      return;
    }
    std::vector<void*> ptrs;
    for (const auto& a : args) ptrs.push_back(const_cast<uint64_t*>(a.data()));
    const CudaDriverApi& cu = cudaDriver();
    if (programmatic && cu.cuLaunchKernelEx) {
      CUlaunchAttribute attr{};
      attr.id = kLaunchAttributeProgrammaticStreamSerialization;
      attr.value.programmaticStreamSerializationAllowed = 1;
      CUlaunchConfig c{grid[0], grid[1], grid[2], block[0], block[1], block[2], shared, s, &attr, 1};
      checkCuda(cu.cuLaunchKernelEx(&c, fn, ptrs.data(), nullptr), "cuLaunchKernelEx");
      return;
    }
    checkCuda(cu.cuLaunchKernel(fn, grid[0], grid[1], grid[2], block[0], block[1], block[2], shared, s, ptrs.data(), nullptr),
              "cuLaunchKernel");
  }
};

}  // namespace

struct GpuExecutor::Impl {
  const CudaDriverApi& cu;
  Plan plan;
  GpuExecutorOptions options;
  DeviceInfo dev;
  CUdevice cuDevice = 0;
  CUcontext ctx = nullptr;
  CUmodule module = nullptr;
  CUstream stream = nullptr;
  std::map<std::string, CUfunction> fns;
  bool kernelsFromPlan = false;
  std::map<std::string, std::pair<CUdeviceptr, size_t>> weightBuffers;  // initializers uploaded (float32 or raw)
  std::map<std::string, std::pair<CUdeviceptr, size_t>> weightBuffers16;  // FP16 copies (FP16-operand cuBLASLt tactics)
  size_t weightBytes = 0;
  size_t biasMatrixBytes = 0;  // of weightBytes, the convolutions' bias matrices (bias as C)

  struct Storage {
    enum Kind { kArena, kInput, kOwned } kind = kArena;
    size_t bytes = 0;
    int firstStep = 0, lastStep = 0;
    CUdeviceptr ptr = 0;
  };
  struct Value {
    DataType dtype = DataType::kFloat;
    Shape shape;
    int storage = -1;  // device storage; -1 for host-known values
    bool nhwc16 = false;  // stored as FP16 NHWC (shape stays the logical NCHW one): nhwcValues
    bool half = false;    // stored as FP16 row-major: halfValues
  };
  struct Step {
    int node = 0;
    enum Kind { kGpu, kCpu } kind = kGpu;
    std::vector<Launch> launches;
  };
  struct Spec {
    std::map<std::string, Value> values;
    std::map<std::string, Tensor> host;     // host-known values computed while specializing
    std::vector<Storage> storages;
    std::vector<Step> steps;
    std::vector<CUdeviceptr> owned;         // arena, input buffers, folded constants
    CUdeviceptr arena = 0;
    CUdeviceptr workspace = 0;      // split-K partial sums, shared by all layers (one stream)
    size_t workspaceBytes = 0;
    CUdeviceptr colBuffer = 0;      // im2col chunks of the cuBLASLt conv tactics, FP16 operand casts
    size_t colBytes = 0;
    bool hasLt = false;             // some launch is a cuBLASLt call (warm up before graph capture)
    std::set<std::string> roundedValues;  // outputs already rounded to FP16 by their layer (roundFused)
    std::set<size_t> deferCancelled;      // deferredRound producers with a reader on the CPU: they round themselves
    std::set<size_t> ltEpilogueNodes;     // cuBLASLt convolutions lowered with bias / activation inside cuBLASLt
    GpuLayerStats stats;
    CUgraphExec graph = nullptr;
    bool graphTried = false;
  };
  std::map<std::string, std::unique_ptr<Spec>> specs;
  std::map<size_t, int64_t> tacticOverride;  // node index -> tactic being timed / chosen (autotune)
  std::map<size_t, int64_t> chosen;          // node index -> tactic used, last specialization
  bool strictTactic = false;                 // autotune: a tactic that cannot be used fails instead of falling back
  const CublasLtApi* ltApi = nullptr;        // null where libcublasLt is missing
  lt::Handle ltHandle = nullptr;
  CUdeviceptr ltWorkspace = 0;
  size_t ltWorkspaceBytes = kLtWorkspaceBytes;  // PLANFORGE_CUBLASLT_WORKSPACE_MB overrides
  bool programmaticLaunch = false;  // our kernels in CUDA graphs with programmatic stream serialization
  int ltAlgos = 1;  // PLANFORGE_CUBLASLT_ALGOS=N: ask the heuristic for N algorithms and keep the fastest (timed once)
  bool ltWarned = false;
  bool nhwcLtWarned = false;
  size_t colBytesCap = kColBytesCap;         // PLANFORGE_GPU_IM2COL_BYTES overrides (tests of the chunking)
  // FP16 plans follow every FP16 layer with a RoundToFp16 of its output. For convolution / GEMM
  // layers whose output only that RoundToFp16 reads, the rounding is done by the layer itself (in
  // the epilogue pass of the cuBLASLt tactics, else one in-place pass) and the RoundToFp16 becomes
  // a view. Node indices of those producers:
  std::set<size_t> roundFused;
  std::map<std::string, bool> fp16ExactWeights;  // initializer -> every element representable in FP16
  // Convolution epilogues on cuBLASLt (tactics.h, planConvLtEpilogue / deferrableConvRounds); on
  // unless PLANFORGE_GPU_CONV_EPILOGUE=0 (A/B runs). Verified on the H100 (bench/gpu/REPORT.md, run 13).
  bool convEpilogue = true;
  // NHWC FP16 convolutions (tactics.h kTacticConvNhwc*; computeNhwcLayout): the convolutions that
  // may run on them, and the values stored as FP16 NHWC because every layer between producer and
  // readers runs in NHWC (those convolutions, MaxPool, GlobalAveragePool, the RoundToFp16 views).
  // PLANFORGE_GPU_NHWC=0 turns the path off (A/B runs).
  bool nhwcEnabled = false;
  std::set<size_t> nhwcConvs;
  std::set<std::string> nhwcValues;
  std::set<std::string> halfValues;  // half_layout.h: FP16 activations of the transformer path
  std::set<size_t> halfGemms;        // GEMMs reading or writing one: cuBLASLt FP16 only
  std::map<size_t, std::string> deferredRound;   // producer conv -> its RoundToFp16 output, rounded by the readers
  std::map<std::string, size_t> deferredInputs;  // that output -> the producer
  // Co x HW bias matrices (bias as C), once per executor: (bias initializer, HW) -> buffer.
  std::map<std::pair<std::string, long long>, std::pair<CUdeviceptr, size_t>> biasMatrices;

  // Values whose every element is already an FP16 value: a RoundToFp16 of them is the identity
  // (exact), so it becomes a view. Outputs of RoundToFp16, of layers that round themselves
  // (roundFused), FP16-exact constants, and outputs of value-preserving layers (copies, selects,
  // max / min / ReLU / negation) whose float inputs are all such values.
  bool fp16Exact(const Tensor& t) const {
    if (t.dtype == DataType::kFloat16 || !isFloatType(t.dtype)) return true;
    if (t.dtype != DataType::kFloat) return false;
    const float* v = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!(halfToFloat(floatToHalf(v[i])) == v[i])) return false;
    return true;
  }
  bool roundedInput(Spec& s, const std::string& name) {
    if (name.empty() || s.roundedValues.count(name)) return true;
    if (s.host.count(name)) return fp16Exact(s.host.at(name));
    auto w = plan.graph.initializers.find(name);
    if (w == plan.graph.initializers.end()) return false;
    auto c = fp16ExactWeights.find(name);
    if (c != fp16ExactWeights.end()) return c->second;
    return fp16ExactWeights[name] = fp16Exact(w->second);
  }
  bool preservesRounding(Spec& s, const Node& n) {
    static const std::set<std::string> firstInput{"Transpose", "MaxPool", "Relu", "Neg", "Abs", "Identity", "Gather"};
    static const std::set<std::string> allInputs{"Concat", "Max", "Min"};
    if (n.outputs.empty() || !onlyFirstOutput(n)) return false;
    auto out = s.values.find(n.outputs[0]);
    if (out == s.values.end() || out->second.dtype != DataType::kFloat) return false;
    if (firstInput.count(n.opType)) return !n.inputs.empty() && roundedInput(s, n.inputs[0]);
    if (allInputs.count(n.opType)) {
      for (const auto& in : n.inputs)
        if (!roundedInput(s, in)) return false;
      return true;
    }
    if (n.opType == "Where") return n.inputs.size() == 3 && roundedInput(s, n.inputs[1]) && roundedInput(s, n.inputs[2]);
    return false;
  }

  Impl(const Plan& p, const GpuExecutorOptions& o) : cu(cudaDriver()), plan(p), options(o) {
    dev = deviceInfo(o.deviceOrdinal);
    checkPlanMatchesDevice(plan.header.targetSm, dev.sm, dev.name);
    const std::vector<uint8_t> image = kernelImageForPlan(plan, &kernelsFromPlan);
    checkCuda(cu.cuDeviceGet(&cuDevice, o.deviceOrdinal), "cuDeviceGet");
    checkCuda(cu.cuDevicePrimaryCtxRetain(&ctx, cuDevice), "cuDevicePrimaryCtxRetain");
    bind();
    checkCuda(cu.cuModuleLoadData(&module, image.data()), "cuModuleLoadData (plan kernels)");
    for (const char* n : kKernelNames) {
      CUfunction f = nullptr;
      checkCuda(cu.cuModuleGetFunction(&f, module, n), (std::string("cuModuleGetFunction ") + n).c_str());
      fns[n] = f;
    }
    for (const char* n : kOptionalKernelNames) {
      CUfunction f = nullptr;
      if (cu.cuModuleGetFunction(&f, module, n) == 0 && f) fns[n] = f;
    }
    checkCuda(cu.cuStreamCreate(&stream, kStreamNonBlocking), "cuStreamCreate");
    ltApi = cublasLt();
    if (const char* e = std::getenv("PLANFORGE_GPU_IM2COL_BYTES")) colBytesCap = std::max<size_t>(4, std::strtoull(e, nullptr, 10));
    if (const char* e = std::getenv("PLANFORGE_CUBLASLT_WORKSPACE_MB"))
      ltWorkspaceBytes = std::max<size_t>(1, std::min<size_t>(4096, std::strtoull(e, nullptr, 10))) << 20;
    if (const char* e = std::getenv("PLANFORGE_CUBLASLT_ALGOS")) ltAlgos = std::max(1, std::min(32, std::atoi(e)));
    if (const char* e = std::getenv("PLANFORGE_GPU_CONV_EPILOGUE")) convEpilogue = std::string(e) != "0";
    // Programmatic dependent launch in CUDA graphs: Hopper and later, a driver with cuLaunchKernelEx,
    // and a cubin whose kernels all wait for their predecessor (older plans' cubins do not).
    // PLANFORGE_GPU_PDL=0 turns it off (A/B runs).
    programmaticLaunch = dev.sm >= 90 && cu.cuLaunchKernelEx && fns.count("pf_programmatic_launch_v1");
    if (const char* e = std::getenv("PLANFORGE_GPU_PDL")) programmaticLaunch = programmaticLaunch && std::string(e) != "0";
    findFusableRounds();
    enableNhwc();
    computeNhwcLayout();
    computeHalfLayout();
    if (convEpilogue && fns.count("pf_im2col_h"))
      for (const auto& d : deferrableConvRounds(plan.graph))
        if (roundFused.count(d.first) && !nhwcConvs.count(d.first) && !nhwcReadsValue(d.second)) {
          deferredRound[d.first] = d.second;
          deferredInputs[d.second] = d.first;
        }
  }

  void findFusableRounds() {
    const Graph& g = plan.graph;
    std::map<std::string, int> consumers;
    std::map<std::string, size_t> producer;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      for (const auto& in : g.nodes[i].inputs)
        if (!in.empty()) ++consumers[in];
      for (const auto& o : g.nodes[i].outputs)
        if (!o.empty()) producer[o] = i;
    }
    const std::set<std::string> outputs(g.outputs.begin(), g.outputs.end());
    for (const Node& r : g.nodes) {
      if (r.opType != "RoundToFp16" || r.inputs.size() != 1 || r.outputs.size() != 1) continue;
      const std::string& x = r.inputs[0];
      auto p = producer.find(x);
      if (p == producer.end() || consumers[x] != 1 || outputs.count(x)) continue;
      const Node& n = g.nodes[p->second];
      const bool gemmOrConv = n.opType == "Conv" || n.opType == "FusedConv" || n.opType == "Gemm" || n.opType == "FusedGemm" ||
                              n.opType == "MatMul" || n.opType == "FusedMatMul";
      // Softmax / LayerNorm: their _round kernels (absent from older cubins: then the RoundToFp16 stays).
      const bool rowOp = ((n.opType == "Softmax" || n.opType == "LogSoftmax") && fns.count("pf_softmax_round")) ||
                         (n.opType == "LayerNormalization" && fns.count("pf_layernorm_round")) ||
                         (n.opType == "FusedAttention" && fns.count("pf_attention")) ||
                         ((n.opType == "GlobalAveragePool" || n.opType == "ReduceMean") && fns.count("pf_row_mean_round")) ||
                         (binaryOps().count(n.opType) && fns.count("pf_binary_round"));
      if ((gemmOrConv || rowOp) && !n.outputs.empty() && n.outputs[0] == x && onlyFirstOutput(n)) roundFused.insert(p->second);
    }
  }

  // The NHWC path needs its kernels in the plan's cubin and more than 48 KiB of dynamic shared
  // memory for the larger tiles.
  void enableNhwc() {
    if (const char* e = std::getenv("PLANFORGE_GPU_NHWC"))
      if (std::string(e) == "0") return;
    for (const char* k : kNhwcKernelNames) {
      CUfunction f = nullptr;
      if (cu.cuModuleGetFunction(&f, module, k) != 0 || !f) return;
      fns[k] = f;
    }
    for (const auto& t : nhwcConvTiles())
      for (const char* k : {t.kernel, t.kernelC4}) {
        CUfunction f = nullptr;
        if (cu.cuModuleGetFunction(&f, module, k) != 0 || !f) return;
        if (cu.cuFuncSetAttribute(f, kFuncAttributeMaxDynamicSharedBytes, t.sharedBytes()) != 0) {
          std::cerr << "planforge: warning: " << k << " cannot have " << t.sharedBytes()
                    << " bytes of shared memory on this GPU; convolutions stay in NCHW\n";
          return;
        }
        fns[k] = f;
      }
    nhwcEnabled = true;
    // Hopper's wgmma kernels: only sm_90a cubins have them (an older plan, another SM: the tiles).
    // Opt-in (PLANFORGE_GPU_WGMMA=1) until a GPU run has checked them against the CPU reference
    // and timed them: written in a session without GPU time (native/kernels/README.md).
    const char* wgmmaSwitch = std::getenv("PLANFORGE_GPU_WGMMA");
    if (!wgmmaSwitch || std::string(wgmmaSwitch) != "1") return;
    for (const auto& t : nhwcWgmmaTiles()) {
      CUfunction f = nullptr;
      if (dev.sm != 90 || cu.cuModuleGetFunction(&f, module, t.kernel) != 0 || !f) continue;
      if (cu.cuFuncSetAttribute(f, kFuncAttributeMaxDynamicSharedBytes, t.sharedBytes()) == 0) fns[t.kernel] = f;
    }
  }

  // The tactic asked for: the autotuner's override, else preferCublasLt's choice, else the plan's
  // (before runtimeTactic's checks and NHWC membership).
  int64_t requestedTactic(const Node& n) const {
    auto ov = tacticOverride.find(nodeIndex(n));
    if (ov != tacticOverride.end()) return ov->second;
    if (options.preferCublasLt && ltApi) {
      int64_t t = cublasLtTacticFor(plan.graph, n);
      if (options.preferCublasLtF16 && cublasLtF16TacticFor(plan.graph, n) != kTacticReference) t = cublasLtF16TacticFor(plan.graph, n);
      if (t != kTacticReference) return t;
    }
    return n.tactic;
  }

  // NHWC layout (nhwc_layout.h): candidates are the eligible convolutions planned on an NHWC
  // tactic (all eligible ones while autotuning; none with preferCublasLt).
  void computeNhwcLayout() {
    if (!nhwcEnabled) return;
    const Graph& g = plan.graph;
    std::set<size_t> candidates;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& n = g.nodes[i];
      if (!nhwcConvEligible(g, n) || (options.preferCublasLt && ltApi)) continue;
      if (options.autotune || isNhwcConvTactic(runtimeTactic(g, n, requestedTactic(n), ltApi != nullptr))) candidates.insert(i);
    }
    NhwcLayout l = planNhwcLayout(g, candidates, roundFused);
    nhwcConvs = std::move(l.convs);
    nhwcValues = std::move(l.values);
  }

  // FP16 activations between the transformer layers (PLANFORGE_GPU_HALF=0: off): needs cuBLASLt for
  // the GEMMs and this cubin's kernels; not in A/B runs that ask for FP32 cuBLASLt operands.
  void computeHalfLayout() {
    const char* e = std::getenv("PLANFORGE_GPU_HALF");
    if ((e && std::string(e) == "0") || !ltApi || (options.preferCublasLt && !options.preferCublasLtF16)) return;
    for (const char* k : {"pf_layernorm_io", "pf_act_h", "pf_attention", "pf_cast_f16", "pf_bias_act"})
      if (!fns.count(k)) return;
    HalfLayout l = planHalfLayout(plan.graph, roundFused);
    for (const auto& v : l.values)
      if (nhwcValues.count(v)) return;  // never both (they are different graphs' paths)
    halfValues = std::move(l.values);
    halfGemms = std::move(l.gemms);
  }

  // The NHWC kernels may run this convolution or GEMM here (path on, not an all-cuBLASLt A/B run).
  bool nhwcUsable(const Node& n) const {
    return nhwcEnabled && !(options.preferCublasLt && ltApi) && (nhwcConvEligible(plan.graph, n) || nhwcGemmEligible(plan.graph, n));
  }
  // Our NCHW kernel for a convolution or GEMM whose NHWC tactic cannot be used.
  static int64_t nchwTactic(const Node& n) {
    const bool conv = n.opType == "Conv" || n.opType == "FusedConv", fp32 = n.precision == "fp32";
    return conv ? (fp32 ? kTacticConvF32 : kTacticConvF16TensorCore) : (fp32 ? kTacticGemmF32 : kTacticGemmF16TensorCore);
  }

  // A member convolution that reads or writes an NHWC value must run on an NHWC tactic.
  bool nhwcConnected(size_t ni) const {
    if (!nhwcConvs.count(ni)) return false;
    const Node& n = plan.graph.nodes[ni];
    if (!n.outputs.empty() && nhwcValues.count(n.outputs[0])) return true;
    for (size_t k : {size_t(0), size_t(3)})
      if (k < n.inputs.size() && nhwcValues.count(n.inputs[k])) return true;
    return false;
  }
  bool nhwcReadsValue(const std::string& value) const {
    const Graph& g = plan.graph;
    for (size_t ni : nhwcConvs)
      for (const auto& in : g.nodes[ni].inputs)
        if (in == value) return true;
    return false;
  }

  // cuBLASLt handle and workspace, created on first use (one per executor).
  bool ensureLt() {
    if (!ltApi) return false;
    if (ltHandle) return true;
    if (ltApi->cublasLtCreate(&ltHandle) != 0 || !ltHandle) {
      std::cerr << "planforge: warning: cublasLtCreate failed; cuBLASLt tactics are off for this executor\n";
      ltHandle = nullptr;
      ltApi = nullptr;
      return false;
    }
    ltWorkspace = alloc(ltWorkspaceBytes);
    return true;
  }

  // One prepared cuBLASLt call with this executor's handle and workspace. With ltAlgos > 1 the
  // heuristic's first ltAlgos algorithms are timed once here (on whatever the buffers hold) and
  // the fastest is kept.
  std::shared_ptr<LtMatmul> makeLt(LtGemmDesc d) {
    d.requestAlgos = ltAlgos;
    std::shared_ptr<LtMatmul> m = LtMatmul::create(ltHandle, d, ltWorkspace, ltWorkspaceBytes);
    if (m && m->algoCount() > 1) pickFastestAlgo(*m);
    return m;
  }
  void pickFastestAlgo(LtMatmul& m) {
    CUevent a = nullptr, b = nullptr;
    checkCuda(cu.cuEventCreate(&a, 0), "cuEventCreate");
    checkCuda(cu.cuEventCreate(&b, 0), "cuEventCreate");
    int best = 0;
    float bestMs = 1e30f;
    for (int i = 0; i < m.algoCount(); ++i) {
      m.selectAlgo(i);
      try {
        m(stream);
        checkCuda(cu.cuEventRecord(a, stream), "cuEventRecord");
        for (int r = 0; r < 3; ++r) m(stream);
        checkCuda(cu.cuEventRecord(b, stream), "cuEventRecord");
        checkCuda(cu.cuEventSynchronize(b), "cuEventSynchronize");
        float ms = 0;
        checkCuda(cu.cuEventElapsedTime(&ms, a, b), "cuEventElapsedTime");
        if (ms < bestMs) {
          bestMs = ms;
          best = i;
        }
      } catch (const BuildError&) {
        checkCuda(cu.cuStreamSynchronize(stream), "cuStreamSynchronize");
      }
    }
    cu.cuEventDestroy(a);
    cu.cuEventDestroy(b);
    m.selectAlgo(best);
  }
  std::string ltDescription() const {
    if (ltApi) return ltApi->path + " (version " + std::to_string(ltApi->version) + ")";
    const std::string why = cublasLtUnavailableReason();
    return "not available: " + (why.empty() ? std::string("cublasLtCreate failed") : why);
  }

  ~Impl() {
    try {
      bind();
      for (auto& kv : specs) freeSpec(*kv.second);
      specs.clear();  // cuBLASLt descriptors before the handle
      if (ltHandle) ltApi->cublasLtDestroy(ltHandle);
      if (ltWorkspace) cu.cuMemFree(ltWorkspace);
      for (auto& kv : weightBuffers) cu.cuMemFree(kv.second.first);
      for (auto& kv : weightBuffers16) cu.cuMemFree(kv.second.first);
      for (auto& kv : biasMatrices) cu.cuMemFree(kv.second.first);
      if (stream) cu.cuStreamDestroy(stream);
      if (module) cu.cuModuleUnload(module);
      if (ctx) cu.cuDevicePrimaryCtxRelease(cuDevice);
    } catch (...) {
    }
  }

  // The primary context must be current on whichever thread calls (Node AsyncWorkers move around).
  void bind() { checkCuda(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent"); }

  void freeSpec(Spec& s) {
    if (s.graph) cu.cuGraphExecDestroy(s.graph);
    for (CUdeviceptr p : s.owned) cu.cuMemFree(p);
    s.owned.clear();
  }

  CUdeviceptr alloc(size_t bytes) {
    CUdeviceptr p = 0;
    checkCuda(cu.cuMemAlloc(&p, std::max<size_t>(bytes, 256)), "cuMemAlloc");
    return p;
  }

  unsigned gridFor(int64_t n, unsigned block = 256) const {
    const int64_t blocks = (n + block - 1) / block;
    return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, int64_t(dev.multiprocessors) * 32)));
  }

  // ---------------------------------------------------------------- specialization

  const Tensor* hostValue(const Spec& s, const std::string& name) const {
    auto it = s.host.find(name);
    if (it != s.host.end()) return &it->second;
    auto w = plan.graph.initializers.find(name);
    return w == plan.graph.initializers.end() ? nullptr : &w->second;
  }

  // Uploads a host-known tensor (float types as float32, others raw) and returns its device pointer.
  CUdeviceptr deviceConst(Spec& s, const std::string& name) {
    const Tensor* t = hostValue(s, name);
    if (!t) throw BuildError(ErrorCode::kInternal, "no host value for '" + name + "'");
    const bool isWeight = plan.graph.initializers.count(name) && !s.host.count(name);
    if (isWeight) {
      auto it = weightBuffers.find(name);
      if (it != weightBuffers.end()) return it->second.first;
    }
    CUdeviceptr p = 0;
    size_t bytes = 0;
    if (isFloatType(t->dtype)) {
      const std::vector<float> v = toFloatVector(*t);
      bytes = v.size() * 4;
      p = alloc(bytes);
      checkCuda(cu.cuMemcpyHtoDAsync(p, v.data(), bytes, stream), "upload constant");
      checkCuda(cu.cuStreamSynchronize(stream), "upload constant");
    } else {
      bytes = t->bytes.size();
      p = alloc(bytes);
      if (bytes) checkCuda(cu.cuMemcpyHtoDAsync(p, t->bytes.data(), bytes, stream), "upload constant");
      checkCuda(cu.cuStreamSynchronize(stream), "upload constant");
    }
    if (isWeight) {
      weightBuffers[name] = {p, bytes};
      weightBytes += bytes;
    } else {
      s.owned.push_back(p);
    }
    return p;
  }

  // Uploads host bytes; a weight's copy is kept in `cache` under `key` for the executor's life (and
  // counted in weightBytes), anything else belongs to the specialization.
  CUdeviceptr uploadKept(Spec& s, std::map<std::string, std::pair<CUdeviceptr, size_t>>& cache, const std::string& key, bool isWeight,
                         const void* data, size_t bytes, const char* what) {
    const CUdeviceptr p = alloc(bytes);
    checkCuda(cu.cuMemcpyHtoDAsync(p, data, bytes, stream), what);
    checkCuda(cu.cuStreamSynchronize(stream), what);
    if (isWeight) {
      cache[key] = {p, bytes};
      weightBytes += bytes;
    } else {
      s.owned.push_back(p);
    }
    return p;
  }

  // FP16 copy of a host-known float tensor (weights: once per executor) for the FP16-operand
  // cuBLASLt tactics.
  CUdeviceptr deviceConstHalf(Spec& s, const std::string& name) {
    const Tensor* t = hostValue(s, name);
    if (!t || !isFloatType(t->dtype)) throw BuildError(ErrorCode::kInternal, "no float host value for '" + name + "'");
    const bool isWeight = plan.graph.initializers.count(name) && !s.host.count(name);
    if (isWeight) {
      auto it = weightBuffers16.find(name);
      if (it != weightBuffers16.end()) return it->second.first;
    }
    std::vector<uint16_t> h(static_cast<size_t>(t->numel()));
    if (t->dtype == DataType::kFloat16) {
      std::memcpy(h.data(), t->bytes.data(), h.size() * 2);
    } else {
      const std::vector<float> v = toFloatVector(*t);
      for (size_t i = 0; i < h.size(); ++i) h[i] = floatToHalf(v[i]);
    }
    return uploadKept(s, weightBuffers16, name, isWeight, h.data(), h.size() * 2, "upload fp16 constant");
  }

  // The bias of a convolution broadcast over the pixels of one image: a Co x HW FP32 matrix, the C
  // operand of its cuBLASLt GEMM (beta = 1, batch stride 0). Uploaded once per executor for weights
  // (counted in weightBytes), per specialization otherwise.
  CUdeviceptr biasMatrix(Spec& s, const std::string& name, long long co, long long hw) {
    const bool isWeight = plan.graph.initializers.count(name) && !s.host.count(name);
    const auto key = std::make_pair(name, hw);
    if (isWeight) {
      auto it = biasMatrices.find(key);
      if (it != biasMatrices.end()) return it->second.first;
    }
    const Tensor* t = hostValue(s, name);
    if (!t || !isFloatType(t->dtype) || t->numel() != co) throw BuildError(ErrorCode::kInternal, "bad convolution bias '" + name + "'");
    const std::vector<float> b = toFloatVector(*t);
    std::vector<float> m(static_cast<size_t>(co * hw));
    for (long long c = 0; c < co; ++c) std::fill(m.begin() + c * hw, m.begin() + (c + 1) * hw, b[static_cast<size_t>(c)]);
    const size_t bytes = m.size() * 4;
    const CUdeviceptr p = alloc(bytes);
    checkCuda(cu.cuMemcpyHtoDAsync(p, m.data(), bytes, stream), "upload bias matrix");
    checkCuda(cu.cuStreamSynchronize(stream), "upload bias matrix");
    if (isWeight) {
      biasMatrices[key] = {p, bytes};
      weightBytes += bytes;
      biasMatrixBytes += bytes;
    } else {
      s.owned.push_back(p);
    }
    return p;
  }

  static std::string specKey(const std::map<std::string, Tensor>& inputs) {
    std::string k;
    for (const auto& kv : inputs) k += kv.first + ":" + std::to_string(static_cast<int>(kv.second.dtype)) + ":" + shapeToString(kv.second.shape) + ";";
    return k;
  }

  Spec& specFor(const std::map<std::string, Tensor>& inputs) {
    const std::string key = specKey(inputs);
    auto it = specs.find(key);
    if (it != specs.end()) return *it->second;
    auto spec = std::make_unique<Spec>();
    try {
      specialize(*spec, inputs);
    } catch (...) {
      freeSpec(*spec);
      throw;
    }
    Spec& ref = *spec;
    specs[key] = std::move(spec);
    return ref;
  }

  void specialize(Spec& s, const std::map<std::string, Tensor>& inputs) {
    const Graph& g = plan.graph;
    for (const auto& name : g.inputs) {
      auto in = inputs.find(name);
      if (in == inputs.end()) throw BuildError(ErrorCode::kProfile, "missing input '" + name + "'");
      Storage st;
      st.kind = Storage::kInput;
      st.bytes = in->second.bytes.size();
      st.firstStep = 0;
      st.lastStep = INT_MAX;
      s.storages.push_back(st);
      s.values[name] = Value{in->second.dtype, in->second.shape, static_cast<int>(s.storages.size()) - 1};
    }

    for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
      const Node& n = g.nodes[ni];
      // Inputs as shape inference sees them; host-known values are passed as constants.
      std::vector<ValueInfo> infos;
      bool allHost = true;
      for (const auto& name : n.inputs) {
        ValueInfo vi;
        if (name.empty()) {
          vi.present = false;
          infos.push_back(vi);
          continue;
        }
        const Tensor* hv = hostValue(s, name);
        if (hv) {
          vi.dtype = hv->dtype;
          vi.shape = hv->shape;
          vi.constValue = hv;
        } else {
          auto v = s.values.find(name);
          if (v == s.values.end()) throw BuildError(ErrorCode::kInternal, "layer '" + n.name + "' reads unknown value '" + name + "'");
          vi.dtype = v->second.dtype;
          vi.shape = v->second.shape;
          allHost = false;
        }
        infos.push_back(vi);
      }

      // Shape / Size of a tensor whose shape is now known: computed on the host.
      if (!allHost && (n.opType == "Shape" || n.opType == "Size") && !infos.empty()) {
        const Shape& sh = infos[0].shape;
        Tensor t;
        if (n.opType == "Size") {
          t = Tensor(DataType::kInt64, {});
          t.data<int64_t>()[0] = shapeNumel(sh);
        } else {
          const int64_t r = static_cast<int64_t>(sh.size());
          int64_t start = n.attrs.getInt("start", 0), end = n.attrs.getInt("end", r);
          if (start < 0) start += r;
          if (end < 0) end += r;
          start = std::clamp<int64_t>(start, 0, r);
          end = std::clamp<int64_t>(end, start, r);
          t = Tensor(DataType::kInt64, {end - start});
          for (int64_t i = start; i < end; ++i) t.data<int64_t>()[i - start] = sh[i];
        }
        s.host[n.outputs.at(0)] = std::move(t);
        ++s.stats.foldedLayers;
        continue;
      }
      if (allHost && !nondeterministicOps().count(n.opType)) {
        std::vector<const Tensor*> ins;
        for (const auto& name : n.inputs) ins.push_back(name.empty() ? nullptr : hostValue(s, name));
        std::vector<Tensor> outs = runNode(g, n, ins);
        for (size_t k = 0; k < n.outputs.size() && k < outs.size(); ++k)
          if (!n.outputs[k].empty()) s.host[n.outputs[k]] = std::move(outs[k]);
        ++s.stats.foldedLayers;
        continue;
      }

      const OpDef* def = OpRegistry::instance().find(n.opType);
      if (!def) throw BuildError(ErrorCode::kUnsupportedOp, "no kernel for " + n.opType + " '" + n.name + "'");
      NodeContext nctx{n.opType, n.name, n.attrs, g.opset, static_cast<int>(n.outputs.size())};
      std::vector<ValueInfo> outs = def->infer(nctx, infos);
      for (size_t k = 0; k < n.outputs.size() && k < outs.size(); ++k) {
        if (n.outputs[k].empty()) continue;
        for (int64_t d : outs[k].shape)
          if (d < 0 || !outs[k].hasShape)
            throw BuildError(ErrorCode::kUnsupportedOp, "GPU execution needs static shapes: the output of " + n.opType + " '" + n.name +
                                                            "' depends on tensor values");
      }
      const int stepIndex = static_cast<int>(s.steps.size());
      auto touch = [&](const std::string& name) {
        auto v = s.values.find(name);
        if (v != s.values.end() && v->second.storage >= 0) {
          Storage& st = s.storages[v->second.storage];
          st.lastStep = std::max(st.lastStep, stepIndex);
        }
      };

      // Views: the output shares the input's device memory.
      const bool aliasOp = (n.opType == "Reshape" || n.opType == "Flatten" || n.opType == "Squeeze" || n.opType == "Unsqueeze" ||
                            n.opType == "Identity" || (n.opType == "Dropout" && (n.outputs.size() == 1 || n.outputs[1].empty())) ||
                            (n.opType == "Cast" && infos[0].dtype == outs[0].dtype) ||
                            (n.opType == "RoundToFp16" && n.inputs.size() == 1 &&
                             (s.roundedValues.count(n.inputs[0]) || nhwcValues.count(n.inputs[0]) || halfValues.count(n.inputs[0]))));
      if (aliasOp && !outs.empty() && s.values.count(n.inputs[0])) {
        const Value& in = s.values[n.inputs[0]];
        if (in.nhwc16 != (nhwcValues.count(n.outputs[0]) != 0))
          throw BuildError(ErrorCode::kInternal, "layer '" + n.name + "' would view an FP16 NHWC value as another layout");
        if (in.half != (halfValues.count(n.outputs[0]) != 0))
          throw BuildError(ErrorCode::kInternal, "layer '" + n.name + "' would view an FP16 value as FP32 or the reverse");
        s.values[n.outputs[0]] = Value{outs[0].dtype, outs[0].shape, in.storage, in.nhwc16, in.half};
        if (s.roundedValues.count(n.inputs[0])) s.roundedValues.insert(n.outputs[0]);
        ++s.stats.aliasLayers;
        continue;
      }

      for (const auto& name : n.inputs) touch(name);
      for (size_t k = 0; k < n.outputs.size() && k < outs.size(); ++k) {
        if (n.outputs[k].empty()) continue;
        Storage st;
        const bool nhwc = nhwcValues.count(n.outputs[k]) && outs[k].dtype == DataType::kFloat && outs[k].shape.size() == 4;
        if (nhwcValues.count(n.outputs[k]) && !nhwc)
          throw BuildError(ErrorCode::kInternal, "layer '" + n.name + "': an FP16 NHWC value must be a 4-D float tensor");
        const bool half = halfValues.count(n.outputs[k]) && outs[k].dtype == DataType::kFloat;
        if (halfValues.count(n.outputs[k]) && !half)
          throw BuildError(ErrorCode::kInternal, "layer '" + n.name + "': an FP16 activation must be a float tensor");
        st.bytes = static_cast<size_t>(shapeNumel(outs[k].shape)) * (nhwc || half ? 2 : dataTypeSize(outs[k].dtype));
        st.firstStep = st.lastStep = stepIndex;
        s.storages.push_back(st);
        s.values[n.outputs[k]] = Value{outs[k].dtype, outs[k].shape, static_cast<int>(s.storages.size()) - 1, nhwc, half};
      }
      Step step;
      step.node = static_cast<int>(ni);
      std::vector<Launch> dry;
      step.kind = lower(s, n, /*dry=*/true, dry) ? Step::kGpu : Step::kCpu;
      if (step.kind == Step::kGpu) {
        ++s.stats.gpuLayers;
        if (roundFused.count(ni) || (n.opType == "RoundToFp16" && !n.outputs.empty()) || preservesRounding(s, n))
          s.roundedValues.insert(n.outputs[0]);
      } else {
        for (const auto& name : n.outputs)
          if (nhwcValues.count(name) || (!n.inputs.empty() && nhwcValues.count(n.inputs[0])))
            throw BuildError(ErrorCode::kInternal, "layer " + n.opType + " '" + n.name + "' cannot run on the GPU but is part of an FP16 NHWC chain");
        for (const auto& name : n.inputs)
          if (halfValues.count(name) || (!n.outputs.empty() && halfValues.count(n.outputs[0])))
            throw BuildError(ErrorCode::kInternal, "layer " + n.opType + " '" + n.name +
                                                       "' cannot run on the GPU but reads or writes an FP16 activation (PLANFORGE_GPU_HALF=0 turns them off)");
        ++s.stats.cpuLayers;
        s.stats.cpuLayerNames.push_back(n.opType + " '" + n.name + "'");
        for (const auto& in : n.inputs) {  // a deferred rounding that a CPU reader would miss: the producer rounds
          auto d = deferredInputs.find(in);
          if (d != deferredInputs.end()) s.deferCancelled.insert(d->second);
        }
      }
      s.steps.push_back(std::move(step));
    }

    // Graph outputs stay alive to the end.
    for (const auto& name : g.outputs) {
      auto v = s.values.find(name);
      if (v != s.values.end() && v->second.storage >= 0) s.storages[v->second.storage].lastStep = INT_MAX;
    }

    // Memory plan for the arena; inputs get their own buffers.
    std::vector<BufferRequest> reqs;
    std::vector<int> reqStorage;
    for (size_t i = 0; i < s.storages.size(); ++i) {
      Storage& st = s.storages[i];
      if (st.kind == Storage::kInput) {
        st.ptr = alloc(st.bytes);
        s.owned.push_back(st.ptr);
        continue;
      }
      reqs.push_back(BufferRequest{st.bytes, st.firstStep, st.lastStep});
      reqStorage.push_back(static_cast<int>(i));
      s.stats.naiveBytes += st.bytes;
    }
    const MemoryPlan mp = planMemory(reqs);
    s.stats.arenaBytes = mp.arenaSize;
    if (mp.arenaSize) {
      s.arena = alloc(mp.arenaSize);
      s.owned.push_back(s.arena);
    }
    for (size_t r = 0; r < reqs.size(); ++r) s.storages[reqStorage[r]].ptr = s.arena + mp.offsets[r];
    if (s.workspaceBytes) {
      s.workspace = alloc(s.workspaceBytes);
      s.owned.push_back(s.workspace);
    }
    if (s.colBytes) {
      s.colBuffer = alloc(s.colBytes);
      s.owned.push_back(s.colBuffer);
    }

    // Kernel launches with the real pointers (uploads constants as needed).
    for (Step& step : s.steps)
      if (step.kind == Step::kGpu && !lower(s, g.nodes[step.node], /*dry=*/false, step.launches))
        throw BuildError(ErrorCode::kInternal, "layer '" + g.nodes[step.node].name + "' could not be lowered a second time");
    if (options.autotune) autotune(s);
    s.stats.weightBytes = weightBytes;
    s.stats.biasMatrixBytes = biasMatrixBytes;
    s.stats.deferredRounds = 0;
    for (const auto& d : deferredRound)
      if (!s.deferCancelled.count(d.first)) ++s.stats.deferredRounds;
    s.stats.cublasLt = ltDescription();
    for (const auto& kv : s.values) {
      if (kv.second.nhwc16 && kv.second.storage >= 0) ++s.stats.nhwcValues;
      if (kv.second.half && kv.second.storage >= 0) ++s.stats.halfValues;
    }
    std::map<std::string, int> byTactic;
    for (const Step& step : s.steps) {
      if (step.kind != Step::kGpu) continue;
      auto c = chosen.find(static_cast<size_t>(step.node));
      if (c != chosen.end() && isCublasLtTactic(c->second)) ++s.stats.cublasLtLayers;
      if (c != chosen.end() && isCublasLtF16Tactic(c->second)) ++s.stats.cublasLtF16Layers;
      if (c != chosen.end() && (isNhwcConvTactic(c->second) || isNhwcGemmTactic(c->second))) ++s.stats.nhwcLayers;
      const std::string& op = plan.graph.nodes[step.node].opType;
      if (c != chosen.end() && (op.find("Conv") != std::string::npos || op.find("Gemm") != std::string::npos || op.find("MatMul") != std::string::npos))
        ++byTactic[tacticName(c->second)];
      if (c != chosen.end() && (c->second == kTacticConvCublasLt || c->second == kTacticConvCublasLtF16) &&
          s.ltEpilogueNodes.count(static_cast<size_t>(step.node))) {
        ++s.stats.convEpiloguesOnLt;
        s.stats.convEpilogueLayers.push_back(plan.graph.nodes[step.node].name);
      }
      s.stats.launches += static_cast<int>(step.launches.size());
      for (const Launch& l : step.launches) s.hasLt = s.hasLt || l.lt != nullptr;
    }
    for (const auto& kv : byTactic) s.stats.tactics += (s.stats.tactics.empty() ? "" : ",") + kv.first + ":" + std::to_string(kv.second);
    std::map<std::string, int> byCompute;
    for (const Step& step : s.steps)
      for (const Launch& l : step.launches)
        if (l.lt) ++byCompute[std::to_string(l.lt->computeType()) + (l.lt->abType() == lt::kR16F ? "h" : "")];
    for (const auto& kv : byCompute)
      s.stats.cublasLtComputeTypes += (s.stats.cublasLtComputeTypes.empty() ? "" : ",") + kv.first + ":" + std::to_string(kv.second);
    if (s.stats.cpuLayers) s.stats.cudaGraphNote = "not captured: " + std::to_string(s.stats.cpuLayers) + " layer(s) run on the CPU";
    else if (!options.cudaGraph) s.stats.cudaGraphNote = "disabled";
  }

  // Times each candidate tactic of every GEMM / convolution step (on whatever the arena holds:
  // timings do not depend on values) and keeps the fastest launches.
  void autotune(Spec& s) {
    const auto t0 = std::chrono::steady_clock::now();
    CUevent a = nullptr, b = nullptr;
    checkCuda(cu.cuEventCreate(&a, 0), "cuEventCreate");
    checkCuda(cu.cuEventCreate(&b, 0), "cuEventCreate");
    auto timeLaunches = [&](const std::vector<Launch>& ls) {
      // Warm-up (also cuBLASLt's lazy set-up, which must stay out of a capture), timed as is.
      checkCuda(cu.cuEventRecord(a, stream), "cuEventRecord");
      for (const Launch& l : ls) l(stream);
      checkCuda(cu.cuEventRecord(b, stream), "cuEventRecord");
      checkCuda(cu.cuEventSynchronize(b), "cuEventSynchronize");
      float first = 0;
      checkCuda(cu.cuEventElapsedTime(&first, a, b), "cuEventElapsedTime");
      // Short layers: timed inside a CUDA graph of kReps copies, as the plan runs (programmatic
      // launches included), so the launch gaps between a candidate's kernels (an FP16 cast before
      // a GEMM, a split-K reduce) do not count against it. Long layers (or when capture fails):
      // plain launches.
      constexpr int kReps = 10;
      CUgraphExec exec = nullptr;
      if (first < 0.5f && cu.cuStreamBeginCapture(stream, kCaptureModeThreadLocal) == 0) {
        CUgraph graph = nullptr;
        bool ok = true;
        try {
          for (int r = 0; r < kReps; ++r)
            for (const Launch& l : ls) l(stream, programmaticLaunch);
        } catch (const BuildError&) {
          ok = false;
        }
        const CUresult end = cu.cuStreamEndCapture(stream, &graph);
        if (!(ok && end == 0 && graph && cu.cuGraphInstantiateWithFlags(&exec, graph, 0) == 0)) exec = nullptr;
        if (graph) cu.cuGraphDestroy(graph);
      }
      if (exec) {
        float best = 1e30f;
        try {
          checkCuda(cu.cuGraphLaunch(exec, stream), "cuGraphLaunch");
          for (int rep = 0; rep < 3; ++rep) {
            checkCuda(cu.cuEventRecord(a, stream), "cuEventRecord");
            checkCuda(cu.cuGraphLaunch(exec, stream), "cuGraphLaunch");
            checkCuda(cu.cuEventRecord(b, stream), "cuEventRecord");
            checkCuda(cu.cuEventSynchronize(b), "cuEventSynchronize");
            float ms = 0;
            checkCuda(cu.cuEventElapsedTime(&ms, a, b), "cuEventElapsedTime");
            best = std::min(best, ms / kReps);
          }
        } catch (...) {
          cu.cuGraphExecDestroy(exec);
          throw;
        }
        cu.cuGraphExecDestroy(exec);
        return best;
      }
      float best = 1e30f;
      for (int rep = 0; rep < (first < 0.5f ? 5 : 3); ++rep) {
        checkCuda(cu.cuEventRecord(a, stream), "cuEventRecord");
        for (const Launch& l : ls) l(stream);
        checkCuda(cu.cuEventRecord(b, stream), "cuEventRecord");
        checkCuda(cu.cuEventSynchronize(b), "cuEventSynchronize");
        float ms = 0;
        checkCuda(cu.cuEventElapsedTime(&ms, a, b), "cuEventElapsedTime");
        best = std::min(best, ms);
      }
      return best;
    };
    try {
      for (Step& st : s.steps) {
        if (st.kind != Step::kGpu) continue;
        const Node& n = plan.graph.nodes[st.node];
        if (halfGemms.count(static_cast<size_t>(st.node))) continue;  // cuBLASLt FP16 is their only tactic
        std::vector<int64_t> cands = tuningCandidates(plan.graph, n, ltApi != nullptr);
        // Layout is fixed before tuning: NHWC-connected convolutions choose among the NHWC tiles,
        // convolutions off the path never get them.
        const bool connected = nhwcConnected(static_cast<size_t>(st.node)), usable = nhwcUsable(n);
        cands.erase(std::remove_if(cands.begin(), cands.end(),
                                   [&](int64_t c) { return connected ? !isNhwcConvTactic(c) : (!usable && nhwcConvTile(c) != nullptr); }),
                    cands.end());
        if (cands.size() < 2) continue;
        strictTactic = true;
        struct StrictOff {
          bool& f;
          ~StrictOff() { f = false; }
        } strictOff{strictTactic};
        TimingKey key;
        if (options.timingCache) {
          std::vector<std::pair<DataType, Shape>> ins;
          for (const auto& name : n.inputs) {
            if (name.empty()) ins.emplace_back(DataType::kUndefined, Shape{});
            else if (const Tensor* hv = hostValue(s, name)) ins.emplace_back(hv->dtype, hv->shape);
            else ins.emplace_back(s.values.at(name).dtype, s.values.at(name).shape);
          }
          key = TimingKey{kOptimizerVersion, dev.sm, TimingCache::layerSignature(n, ins)};
          const TimingEntry* hit = options.timingCache->find(key);
          std::vector<Launch> ls;
          if (hit && std::find(cands.begin(), cands.end(), hit->tactic) != cands.end()) {
            tacticOverride[st.node] = hit->tactic;
            if (lower(s, n, false, ls)) {
              chosen[st.node] = hit->tactic;
              st.launches = ls;
              ++s.stats.tunedLayers;
              ++s.stats.timingCacheHits;
              continue;
            }
          }
        }
        float bestMs = 1e30f;
        int64_t best = -1;
        std::vector<Launch> bestLaunches;
        for (int64_t c : cands) {
          tacticOverride[st.node] = c;
          std::vector<Launch> ls;
          if (!lower(s, n, false, ls)) continue;
          const float ms = timeLaunches(ls);
          if (ms < bestMs) {
            bestMs = ms;
            best = c;
            bestLaunches = ls;
          }
        }
        if (best < 0) {
          tacticOverride.erase(st.node);
          continue;
        }
        tacticOverride[st.node] = best;
        chosen[st.node] = best;
        st.launches = bestLaunches;
        ++s.stats.tunedLayers;
        if (options.timingCache) options.timingCache->record(key, TimingEntry{best, bestMs});
      }
    } catch (...) {
      cu.cuEventDestroy(a);
      cu.cuEventDestroy(b);
      throw;
    }
    cu.cuEventDestroy(a);
    cu.cuEventDestroy(b);
    s.stats.tuneSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  // ---------------------------------------------------------------- lowering

  struct Operand {
    bool ok = false;
    CUdeviceptr ptr = 0;
    DataType dtype = DataType::kUndefined;  // on the device (host floats are uploaded as float32)
    Shape shape;
    bool nhwc16 = false;  // FP16 NHWC storage (only the NHWC kernels read it; isF32 is false)
    bool half = false;    // FP16 row-major storage (halfValues; isF32 is false)
  };

  Operand operand(Spec& s, const Node& n, size_t i, bool dry) {
    Operand o;
    if (i >= n.inputs.size() || n.inputs[i].empty()) return o;
    const std::string& name = n.inputs[i];
    if (const Tensor* hv = hostValue(s, name)) {
      o.ok = true;
      o.shape = hv->shape;
      o.dtype = isFloatType(hv->dtype) ? DataType::kFloat : hv->dtype;
      o.ptr = dry ? 0 : deviceConst(s, name);
      return o;
    }
    auto v = s.values.find(name);
    if (v == s.values.end() || v->second.storage < 0) return o;
    o.ok = true;
    o.shape = v->second.shape;
    o.dtype = v->second.dtype;
    o.ptr = s.storages[v->second.storage].ptr;
    o.nhwc16 = v->second.nhwc16;
    o.half = v->second.half;
    return o;
  }
  Operand output(Spec& s, const Node& n, size_t k) {
    Operand o;
    auto v = s.values.find(n.outputs.at(k));
    if (v == s.values.end() || v->second.storage < 0) return o;
    o.ok = true;
    o.shape = v->second.shape;
    o.dtype = v->second.dtype;
    o.ptr = s.storages[v->second.storage].ptr;
    o.nhwc16 = v->second.nhwc16;
    o.half = v->second.half;
    return o;
  }
  const Tensor* hostInput(Spec& s, const Node& n, size_t i) { return i < n.inputs.size() && !n.inputs[i].empty() ? hostValue(s, n.inputs[i]) : nullptr; }
  static bool isF32(const Operand& o) { return o.ok && o.dtype == DataType::kFloat && !o.nhwc16 && !o.half; }
  static bool isHalf(const Operand& o) { return o.ok && o.dtype == DataType::kFloat && o.half; }
  static bool onlyFirstOutput(const Node& n) {
    for (size_t k = 1; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty()) return false;
    return true;
  }

  // 2-D launch over [rows][len]: x over len, y over rows; about 32 blocks per SM in all, each
  // looping over rows (grid-stride), so small rows do not mean many tiny blocks.
  Launch rowsLaunch(const char* fn, long long rows, long long len) {
    Launch l;
    l.fn = fns.at(fn);
    const long long block = std::min<long long>(256, std::max<long long>(32, (len + 31) / 32 * 32));
    const long long budget = int64_t(dev.multiprocessors) * 32;
    l.block[0] = static_cast<unsigned>(block);
    l.grid[0] = static_cast<unsigned>(std::max<long long>(1, std::min<long long>((len + block - 1) / block, budget)));
    l.grid[1] = static_cast<unsigned>(std::max<long long>(1, std::min<long long>({rows, 65535LL, budget / l.grid[0]})));
    return l;
  }
  // In place: y = fp16(y), the RoundToFp16 folded into the layer (roundFused).
  Launch roundLaunch(const Operand& y) {
    const long long cnt = shapeNumel(y.shape);
    const int op = kUnaryRoundFp16;
    const float zero = 0.f;
    Launch l = elementwiseLaunch("pf_unary", cnt);
    l.arg(y.ptr); l.arg(y.ptr); l.arg(cnt); l.arg(op); l.arg(zero); l.arg(zero);
    return l;
  }

  Launch elementwiseLaunch(const char* fn, int64_t n) {
    Launch l;
    l.fn = fns.at(fn);
    l.grid[0] = gridFor(n);
    return l;
  }

  // Fused activation attributes -> epilogue op (same defaults as the CPU kernels).
  static bool epilogueFromAttrs(const Node& n, PfEpilogue& e) {
    const std::string a = n.attrs.getString("activation", "");
    float alpha = n.attrs.getFloat("activation_alpha", 0.f), beta = n.attrs.getFloat("activation_beta", 0.f);
    const bool hasA = n.attrs.has("activation_alpha"), hasB = n.attrs.has("activation_beta");
    if (a.empty() || a == "None") e.act = kUnaryCopy;
    else if (a == "Relu") e.act = kUnaryRelu;
    else if (a == "Clip") { e.act = kUnaryClip; if (!hasA) alpha = -INFINITY; if (!hasB) beta = INFINITY; }
    else if (a == "Sigmoid") e.act = kUnarySigmoid;
    else if (a == "HardSigmoid") { e.act = kUnaryHardSigmoid; if (!hasA) alpha = 0.2f; if (!hasB) beta = 0.5f; }
    else if (a == "HardSwish") e.act = kUnaryHardSwish;
    else if (a == "Gelu") e.act = kUnaryGelu;
    else if (a == "GeluTanh") e.act = kUnaryGeluTanh;
    else if (a == "SiLU") e.act = kUnarySilu;
    else if (a == "Tanh") e.act = kUnaryTanh;
    else if (a == "LeakyRelu") { e.act = kUnaryLeakyRelu; if (!hasA) alpha = 0.01f; }
    else return false;
    e.actAlpha = alpha;
    e.actBeta = beta;
    return true;
  }

  bool lowerUnary(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    static const std::map<std::string, int> ops{
        {"Relu", kUnaryRelu}, {"Sigmoid", kUnarySigmoid}, {"Tanh", kUnaryTanh}, {"HardSigmoid", kUnaryHardSigmoid},
        {"HardSwish", kUnaryHardSwish}, {"Clip", kUnaryClip}, {"LeakyRelu", kUnaryLeakyRelu}, {"Gelu", kUnaryGelu},
        {"Erf", kUnaryErf}, {"Exp", kUnaryExp}, {"Sqrt", kUnarySqrt}, {"Neg", kUnaryNeg}, {"Abs", kUnaryAbs},
        {"Reciprocal", kUnaryReciprocal}, {"Log", kUnaryLog}, {"RoundToFp16", kUnaryRoundFp16}};
    auto it = ops.find(n.opType);
    if (it == ops.end()) return false;
    int op = it->second;
    float alpha = 0, beta = 0;
    if (op == kUnaryHardSigmoid) { alpha = n.attrs.getFloat("alpha", 0.2f); beta = n.attrs.getFloat("beta", 0.5f); }
    if (op == kUnaryLeakyRelu) alpha = n.attrs.getFloat("alpha", 0.01f);
    if (op == kUnaryGelu && n.attrs.getString("approximate", "none") == "tanh") op = kUnaryGeluTanh;
    if (op == kUnaryClip) {
      alpha = -INFINITY;
      beta = INFINITY;
      if (n.attrs.has("min")) alpha = n.attrs.getFloat("min", alpha);
      if (n.attrs.has("max")) beta = n.attrs.getFloat("max", beta);
      for (size_t i = 1; i <= 2 && i < n.inputs.size(); ++i) {
        if (n.inputs[i].empty()) continue;
        const Tensor* t = hostInput(s, n, i);
        if (!t || t->numel() != 1) return false;
        (i == 1 ? alpha : beta) = static_cast<float>(t->getDouble(0));
      }
    }
    Operand x = operand(s, n, 0, dry), y = output(s, n, 0);
    if (!isF32(x) || !isF32(y) || !onlyFirstOutput(n)) return false;
    const long long cnt = shapeNumel(y.shape);
    Launch l = elementwiseLaunch("pf_unary", cnt);
    l.arg(x.ptr); l.arg(y.ptr); l.arg(cnt); l.arg(op); l.arg(alpha); l.arg(beta);
    out.push_back(l);
    return true;
  }

  // Broadcast strides of `in` (right-aligned) against `out`; false when rank > kMaxRank.
  static bool broadcastStrides(const Shape& out, const Shape& in, long long* strides) {
    if (out.size() > kMaxRank || in.size() > out.size()) return false;
    const Shape cs = contiguousStrides(in);
    const size_t off = out.size() - in.size();
    for (size_t d = 0; d < out.size(); ++d) {
      if (d < off) { strides[d] = 0; continue; }
      const int64_t dim = in[d - off];
      if (dim != 1 && dim != out[d]) return false;
      strides[d] = dim == 1 ? 0 : cs[d - off];
    }
    return true;
  }

  static const std::map<std::string, int>& binaryOps() {
    static const std::map<std::string, int> ops{{"Add", kBinAdd}, {"Sub", kBinSub}, {"Mul", kBinMul}, {"Div", kBinDiv},
                                                {"Pow", kBinPow}, {"Max", kBinMax}, {"Min", kBinMin}, {"PRelu", kBinPRelu}};
    return ops;
  }

  bool lowerBinary(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    auto it = binaryOps().find(n.opType);
    if (it == binaryOps().end() || n.inputs.size() != 2) return false;
    Operand a = operand(s, n, 0, dry), b = operand(s, n, 1, dry), y = output(s, n, 0);
    if (!isF32(a) || !isF32(b) || !isF32(y)) return false;
    PfStrides st{};
    st.rank = static_cast<int>(y.shape.size());
    if (st.rank == 0) {
      st.rank = 1;
      st.dims[0] = 1;
    } else {
      for (int d = 0; d < st.rank; ++d) st.dims[d] = y.shape[d];
      if (!broadcastStrides(y.shape, a.shape, st.a) || !broadcastStrides(y.shape, b.shape, st.b)) return false;
    }
    const long long cnt = shapeNumel(y.shape);
    Launch l = elementwiseLaunch(roundFused.count(nodeIndex(n)) ? "pf_binary_round" : "pf_binary", cnt);
    l.arg(a.ptr); l.arg(b.ptr); l.arg(y.ptr); l.arg(cnt); l.arg(it->second); l.arg(st);
    out.push_back(l);
    return true;
  }

  bool lowerBatchNorm(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    if (n.inputs.size() < 5 || !onlyFirstOutput(n) || n.attrs.getInt("training_mode", 0) != 0) return false;
    Operand x = operand(s, n, 0, dry), y = output(s, n, 0);
    if (!isF32(x) || !isF32(y) || x.shape.size() < 2) return false;
    const Tensor *scale = hostInput(s, n, 1), *bias = hostInput(s, n, 2), *mean = hostInput(s, n, 3), *var = hostInput(s, n, 4);
    if (!scale || !bias || !mean || !var) return false;
    const int64_t c = x.shape[1];
    if (scale->numel() != c || bias->numel() != c || mean->numel() != c || var->numel() != c) return false;
    if (dry) return true;
    const float eps = n.attrs.getFloat("epsilon", 1e-5f);
    std::vector<float> sc = toFloatVector(*scale), sh = toFloatVector(*bias), m = toFloatVector(*mean), v = toFloatVector(*var);
    for (int64_t i = 0; i < c; ++i) {
      sc[i] = sc[i] / std::sqrt(v[i] + eps);
      sh[i] = sh[i] - m[i] * sc[i];
    }
    CUdeviceptr dsc = alloc(c * 4), dsh = alloc(c * 4);
    s.owned.push_back(dsc);
    s.owned.push_back(dsh);
    checkCuda(cu.cuMemcpyHtoDAsync(dsc, sc.data(), c * 4, stream), "upload batchnorm");
    checkCuda(cu.cuMemcpyHtoDAsync(dsh, sh.data(), c * 4, stream), "upload batchnorm");
    checkCuda(cu.cuStreamSynchronize(stream), "upload batchnorm");
    const long long cnt = shapeNumel(y.shape), cc = c, hw = cnt / std::max<int64_t>(1, x.shape[0] * c);
    Launch l = elementwiseLaunch("pf_channel_affine", cnt);
    l.arg(x.ptr); l.arg(dsc); l.arg(dsh); l.arg(y.ptr); l.arg(cnt); l.arg(cc); l.arg(hw);
    out.push_back(l);
    return true;
  }

  // Split-K for grids too small to fill the GPU (batch-1 layers with long K): the K loop is cut
  // into slices written to a shared workspace, then a reduce kernel applies the epilogue.
  // PLANFORGE_GPU_SPLITK=0 turns it off (A/B comparisons, debugging).
  int chooseSplits(long long blocks, long long K) const {
    if (splitKDisabled() || K < 512 || blocks >= dev.multiprocessors) return 1;
    long long splits = (2LL * dev.multiprocessors + blocks - 1) / blocks;
    splits = std::min<long long>({splits, K / 256, 32});
    return static_cast<int>(std::max<long long>(1, splits));
  }
  static long long chunkFor(long long K, int splits) {
    const long long c = (K + splits - 1) / splits;
    return (c + 31) / 32 * 32;  // whole BK steps of both kernels
  }

  // Residual that broadcasts into the output (e.g. an attention mask [B,1,1,S] added to scores):
  // GEMM first, then y += residual in place. Only without an activation (act(y + r) != act(y) + r).
  bool broadcastResidualLaunch(const Operand& y, const Operand& r, std::vector<Launch>& out) {
    PfStrides st{};
    st.rank = static_cast<int>(y.shape.size());
    if (st.rank == 0 || !broadcastStrides(y.shape, y.shape, st.a) || !broadcastStrides(y.shape, r.shape, st.b)) return false;
    for (int d = 0; d < st.rank; ++d) st.dims[d] = y.shape[d];
    const long long cnt = shapeNumel(y.shape);
    const int op = kBinAdd;
    Launch l = elementwiseLaunch("pf_binary", cnt);
    l.arg(y.ptr); l.arg(r.ptr); l.arg(y.ptr); l.arg(cnt); l.arg(op); l.arg(st);
    out.push_back(l);
    return true;
  }

  // Geometry of a 2-D convolution from the input / weight / output shapes and the attributes.
  static bool convGeometry(const Node& n, const Shape& xs, const Shape& ws, const Shape& ys, PfConvParams& p) {
    p.N = static_cast<int>(xs[0]); p.C = static_cast<int>(xs[1]); p.H = static_cast<int>(xs[2]); p.W = static_cast<int>(xs[3]);
    p.Co = static_cast<int>(ys[1]); p.OH = static_cast<int>(ys[2]); p.OW = static_cast<int>(ys[3]);
    p.KH = static_cast<int>(ws[2]); p.KW = static_cast<int>(ws[3]);
    p.groups = static_cast<int>(n.attrs.getInt("group", 1));
    if (p.groups < 1 || p.C % p.groups || p.Co % p.groups || ws[1] != p.C / p.groups || ws[0] != p.Co) return false;
    const std::vector<int64_t> strides = n.attrs.getInts("strides", {1, 1}), dil = n.attrs.getInts("dilations", {1, 1});
    if (strides.size() != 2 || dil.size() != 2) return false;
    p.sh = static_cast<int>(strides[0]); p.sw = static_cast<int>(strides[1]); p.dh = static_cast<int>(dil[0]); p.dw = static_cast<int>(dil[1]);
    const std::string autoPad = n.attrs.getString("auto_pad", "NOTSET");
    if (autoPad == "NOTSET") {
      const std::vector<int64_t> pads = n.attrs.getInts("pads", {0, 0, 0, 0});
      if (pads.size() != 4) return false;
      p.ph = static_cast<int>(pads[0]); p.pw = static_cast<int>(pads[1]);
    } else if (autoPad == "VALID") {
      p.ph = p.pw = 0;
    } else {
      const int th = std::max(0, (p.OH - 1) * p.sh + (p.KH - 1) * p.dh + 1 - p.H), tw = std::max(0, (p.OW - 1) * p.sw + (p.KW - 1) * p.dw + 1 - p.W);
      p.ph = autoPad == "SAME_LOWER" ? th - th / 2 : th / 2;
      p.pw = autoPad == "SAME_LOWER" ? tw - tw / 2 : tw / 2;
    }
    return true;
  }

  bool lowerConv(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    int64_t tactic = resolveTactic(s, n, dry);
    bool heuristicTile = false;
    // The NHWC tactics that only some layers / machines can run (cuBLASLt's 1x1 GEMM, the wgmma
    // tiles): where they cannot (a side exit after all, no algorithm, no wgmma kernel here), the tile
    // heuristic's choice runs instead, so the dry pass also sizes that fallback's split-K workspace.
    if (tactic == kTacticConvNhwcCublasLt || nhwcWgmmaTile(tactic)) {
      if (tactic == kTacticConvNhwcCublasLt ? lowerConvNhwcLt(s, n, dry, out) : lowerConvNhwc(s, n, dry, tactic, out)) {
        if (dry) {
          std::vector<Launch> sizing;
          lowerConvNhwc(s, n, true, kTacticConvNhwc128x128, sizing, true);
        }
        return true;
      }
      if (strictTactic) return false;
      tactic = kTacticConvNhwc128x128;
      heuristicTile = true;
    }
    if (isNhwcConvTactic(tactic)) {
      if (lowerConvNhwc(s, n, dry, tactic, out, heuristicTile)) return true;
      // Shapes the NHWC kernels do not take (a residual that broadcasts...): the NCHW kernels,
      // unless the layer is part of an NHWC chain (then the CPU step reports it) or being timed.
      if (nhwcConnected(nodeIndex(n)) || strictTactic) return false;
      tactic = nchwTactic(n);
    }
    Operand x = operand(s, n, 0, dry), w = operand(s, n, 1, dry), y = output(s, n, 0);
    if (!isF32(x) || !isF32(w) || !isF32(y) || x.shape.size() != 4 || w.shape.size() != 4 || y.shape.size() != 4) return false;
    PfConvParams p{};
    if (!convGeometry(n, x.shape, w.shape, y.shape, p)) return false;
    // The conv kernels index with 32-bit integers.
    if (shapeNumel(x.shape) >= INT32_MAX || shapeNumel(y.shape) >= INT32_MAX || shapeNumel(w.shape) >= INT32_MAX) return false;
    PfEpilogue& e = p.epi;
    e.alpha = 1.f;
    e.beta = 1.f;
    if (n.opType == "FusedConv" && !epilogueFromAttrs(n, e)) return false;
    Operand b = operand(s, n, 2, dry);
    if (b.ok) {
      if (!isF32(b) || shapeNumel(b.shape) != p.Co) return false;
      e.bias = b.ptr;
      e.biasStrideM = 1;
    }
    Operand bcastResidual;
    if (n.opType == "FusedConv" && n.inputs.size() > 3 && !n.inputs[3].empty()) {
      Operand r = operand(s, n, 3, dry);
      if (!isF32(r)) return false;
      if (r.shape == y.shape) e.residual = r.ptr;
      else if (e.act == kUnaryCopy) bcastResidual = r;
      else return false;
    }
    p.input = x.ptr; p.weight = w.ptr; p.output = y.ptr;
    const bool depthwise = p.C / p.groups == 1 && p.groups > 1;
    bool ltDryOk = false;
    const bool ltEligible = ltApi && cublasLtTacticFor(plan.graph, n) == kTacticConvCublasLt;
    const bool f16Capable = cublasLtF16TacticFor(plan.graph, n) != kTacticReference;
    const size_t ni = nodeIndex(n);
    // A rounding is left to the reader only where that removes this layer's epilogue pass on
    // cuBLASLt altogether (bias as C, activation in cuBLASLt, no residual): otherwise the pass stays
    // and a reader on FP32 operands or our kernels would add a rounding launch of its own.
    if (dry && deferredRound.count(ni)) {
      const bool hasResidual = n.inputs.size() > 3 && !n.inputs[3].empty();
      const bool hostBias = b.ok && hostInput(s, n, 2);
      const long long hw = static_cast<long long>(p.OH) * p.OW;
      if (planConvLtEpilogue(b.ok, hasResidual, e.act, false, p.Co, hw, convEpilogue && (hostBias || !b.ok)).needsPass)
        s.deferCancelled.insert(ni);
    }
    // The folded RoundToFp16, unless left to the readers (deferredRound); this layer's input rounded
    // in place first when its producer left the rounding to it and it does not round it itself.
    const bool round = roundFused.count(ni) != 0 && !(deferredRound.count(ni) && !s.deferCancelled.count(ni));
    bool roundInput = false;
    {
      auto d = deferredInputs.find(n.inputs[0]);
      roundInput = d != deferredInputs.end() && !s.deferCancelled.count(d->second);
    }
    if (tactic == kTacticConvVector) {
      if (!bcastResidual.ok && lowerConvVector(dry, p, roundInput, round, out)) {
        chosen[ni] = tactic;
        return true;
      }
      if (strictTactic) return false;
      tactic = heuristicTactic(plan.graph, n);
    }
    const bool ltTactic = isCublasLtTactic(tactic);  // one of this convolution's (runtimeTactic checked it)
    if (ltEligible && (ltTactic || (dry && options.autotune))) {
      bool f16 = tactic == kTacticConvCublasLtF16;
      std::vector<Launch> lts;
      bool ok = ltConv(s, n, dry, p, y, round && !bcastResidual.ok, f16, lts);
      if (dry && f16Capable) {  // size the other operand type's buffer too (autotune, FP16 -> FP32-operand fallback)
        std::vector<Launch> other;
        ltConv(s, n, true, p, y, false, !f16, other);
      }
      if (ltTactic) {
        if (!ok && f16 && !dry && !strictTactic) {  // no FP16-operand algorithm: FP32 operands on cuBLASLt
          lts.clear();
          f16 = false;
          ok = ltConv(s, n, dry, p, y, round && !bcastResidual.ok, false, lts);
        }
        if (ok && !dry) {
          if (bcastResidual.ok && !broadcastResidualLaunch(y, bcastResidual, lts)) return false;
          if (bcastResidual.ok && round) lts.push_back(roundLaunch(y));
          chosen[nodeIndex(n)] = f16 ? kTacticConvCublasLtF16 : kTacticConvCublasLt;
          if (roundInput && !f16) out.push_back(roundLaunch(x));  // FP16 operands round the input themselves
          out.insert(out.end(), lts.begin(), lts.end());
          return true;
        }
        if (strictTactic && !dry) return false;
        ltDryOk = ok && dry;
      }
    }
    if (ltTactic) tactic = heuristicTactic(plan.graph, n);  // our kernel (fallback; sized while dry)
    if (tactic == kTacticConvDepthwise && !depthwise) tactic = kTacticConvF32;
    std::vector<Launch> ls;
    if (roundInput) ls.push_back(roundLaunch(x));
    // The depthwise kernel rounds its own output when it can (older cubins: a separate pass).
    const bool roundInKernel = round && tactic == kTacticConvDepthwise && !bcastResidual.ok && fns.count("pf_conv_depthwise_round");
    if (!ourConvLaunches(s, p, tactic, ls, roundInKernel)) return ltDryOk;
    chosen[nodeIndex(n)] = tactic;
    if (bcastResidual.ok && !broadcastResidualLaunch(y, bcastResidual, ls)) return false;
    if (round && !roundInKernel) ls.push_back(roundLaunch(y));
    out.insert(out.end(), ls.begin(), ls.end());
    return true;
  }

  // One-pixel 1 x 1 convolutions (kTacticConvVector): one warp per output value, the input's deferred
  // rounding and the output's folded one inside the kernel.
  bool lowerConvVector(bool dry, const PfConvParams& p, bool roundInput, bool roundOutput, std::vector<Launch>& out) {
    if (!fns.count("pf_conv1x1_vector") || p.groups != 1 || p.KH != 1 || p.KW != 1 || p.H != 1 || p.W != 1 || p.OH != 1 || p.OW != 1)
      return false;
    if (dry) return true;
    const int64_t outputs = static_cast<int64_t>(p.N) * p.Co;
    Launch l;
    l.fn = fns.at("pf_conv1x1_vector");
    l.block[0] = 256;
    l.grid[0] = gridFor(outputs * 32, 256);
    l.arg(p);
    l.arg(roundInput ? 1 : 0);
    l.arg(roundOutput ? 1 : 0);
    out.push_back(l);
    return true;
  }

  // Weights of an NHWC convolution: FP16 [Co][KH][KW][Cp], input channels zero-padded to Cp, each
  // output channel's row zero-padded to rowLen (>= KH * KW * Cp).
  CUdeviceptr nhwcWeight(Spec& s, const std::string& name, int cp, int64_t rowLen) {
    const bool isWeight = plan.graph.initializers.count(name) && !s.host.count(name);
    const std::string key = name + "#nhwc" + std::to_string(cp) + "x" + std::to_string(rowLen);
    if (isWeight) {
      auto it = weightBuffers16.find(key);
      if (it != weightBuffers16.end()) return it->second.first;
    }
    const Tensor* t = hostValue(s, name);
    if (!t || !isFloatType(t->dtype) || t->shape.size() != 4) throw BuildError(ErrorCode::kInternal, "bad convolution weight '" + name + "'");
    const int64_t co = t->shape[0], c = t->shape[1], kh = t->shape[2], kw = t->shape[3];
    const std::vector<float> v = toFloatVector(*t);
    if (rowLen < kh * kw * cp || c > cp) throw BuildError(ErrorCode::kInternal, "bad NHWC weight layout for '" + name + "'");
    std::vector<uint16_t> h(static_cast<size_t>(co * rowLen), 0);
    for (int64_t o = 0; o < co; ++o)
      for (int64_t i = 0; i < c; ++i)
        for (int64_t y = 0; y < kh; ++y)
          for (int64_t x = 0; x < kw; ++x)
            h[static_cast<size_t>(o * rowLen + (y * kw + x) * cp + i)] = floatToHalf(v[static_cast<size_t>(((o * c + i) * kh + y) * kw + x)]);
    return uploadKept(s, weightBuffers16, key, isWeight, h.data(), h.size() * 2, "upload NHWC weights");
  }

  int nhwcSplitsHere(const NhwcConvTile& t, long long M, long long Co, long long K, int* kTilesPerSplit) const {
    if (splitKDisabled()) {
      *kTilesPerSplit = static_cast<int>((K + 31) / 32);
      return 1;
    }
    return nhwcSplits(t, M, Co, K, dev.multiprocessors, kTilesPerSplit);
  }

  // A convolution on the NHWC FP16 kernels (kernels/conv_nhwc.cuh): the input is the FP16 NHWC
  // value or, for an FP32 NCHW one, its reformat into the column buffer; bias, residual (either
  // layout), activation and the output's layout / rounding all in the GEMM's epilogue (or in the
  // split-K reduce).
  bool lowerConvNhwc(Spec& s, const Node& n, bool dry, int64_t tactic, std::vector<Launch>& out, bool heuristicTile = false) {
    // The wgmma tiles: chain members over a multiple of 64 input channels, where the cubin has them.
    const NhwcWgmmaTile* wgmma = nhwcWgmmaTile(tactic);
    const NhwcConvTile* tile = wgmma ? nullptr : nhwcConvTile(tactic);
    const size_t ni = nodeIndex(n);
    Operand x = operand(s, n, 0, dry), y = output(s, n, 0);
    const Tensor* wt = hostInput(s, n, 1);
    if (wgmma && (!fns.count(wgmma->kernel) || !x.nhwc16 || !y.nhwc16)) return false;
    if (!(tile || wgmma) || !nhwcEnabled || !x.ok || !y.ok || !wt || x.shape.size() != 4 || wt->shape.size() != 4 || y.shape.size() != 4) return false;
    if (!(x.nhwc16 || isF32(x)) || !(y.nhwc16 || isF32(y)) || !onlyFirstOutput(n)) return false;
    PfConvParams g{};
    if (!convGeometry(n, x.shape, wt->shape, y.shape, g) || g.groups != 1 || g.Co % 8 || (x.nhwc16 && g.C % 8)) return false;
    PfConvNhwcParams p{};
    // Stems (at most 4 input channels, FP32 input): the C4 kernels, half the K of padding to 8.
    const bool c4 = !x.nhwc16 && g.C <= 4;
    p.N = g.N; p.H = g.H; p.W = g.W; p.C = c4 ? 4 : (g.C + 7) / 8 * 8; p.Co = g.Co; p.OH = g.OH; p.OW = g.OW;
    p.KH = g.KH; p.KW = g.KW; p.sh = g.sh; p.sw = g.sw; p.ph = g.ph; p.pw = g.pw; p.dh = g.dh; p.dw = g.dw;
    const long long M = static_cast<long long>(g.N) * g.OH * g.OW, K = (static_cast<long long>(g.KH) * g.KW * p.C + 7) / 8 * 8;
    if (M >= INT32_MAX || K >= INT32_MAX || static_cast<long long>(g.H) * g.W * p.C >= INT32_MAX) return false;
    p.M = static_cast<int>(M);
    p.K = static_cast<int>(K);
    if (wgmma && p.C % 64) return false;
    // Untuned plans (cross-compiled: the plan says "NHWC", not which tile): the shape heuristic.
    if (!wgmma && (heuristicTile || (!plan.header.tuned && !tacticOverride.count(ni)))) {
      tile = nhwcConvTile(nhwcHeuristicTile(M, g.Co, K, dev.sm, dev.multiprocessors));
      tactic = tile->tactic;
    }
    PfEpilogue e{};
    e.act = kUnaryCopy;
    if (n.opType == "FusedConv" && !epilogueFromAttrs(n, e)) return false;
    p.act = e.act;
    p.actAlpha = e.actAlpha;
    p.actBeta = e.actBeta;
    Operand b = operand(s, n, 2, dry);
    if (b.ok) {
      if (!isF32(b) || shapeNumel(b.shape) != g.Co) return false;
      p.bias = b.ptr;
    }
    if (n.opType == "FusedConv" && n.inputs.size() > 3 && !n.inputs[3].empty()) {
      Operand r = operand(s, n, 3, dry);
      if (!r.ok || r.shape != y.shape || !(r.nhwc16 || isF32(r))) return false;
      if (wgmma && !r.nhwc16) return false;
      p.residual = r.ptr;
      p.residualNchw = r.nhwc16 ? 0 : 1;
    }
    p.output = y.ptr;
    p.outputNchw = y.nhwc16 ? 0 : 1;
    p.roundOutput = !y.nhwc16 && roundFused.count(ni) ? 1 : 0;

    std::vector<Launch> ls;
    const size_t staged = x.nhwc16 ? 0 : static_cast<size_t>(g.N) * g.H * g.W * p.C * 2;
    if (staged) {
      if (dry) {
        s.colBytes = std::max(s.colBytes, staged);
      } else {
        if (!s.colBuffer || s.colBytes < staged) return false;
        const int hw = g.H * g.W;
        Launch r;
        r.fn = fns.at("pf_nchw_to_nhwc16");
        r.grid[0] = static_cast<unsigned>((hw + 31) / 32);
        r.grid[1] = static_cast<unsigned>((p.C + 31) / 32);
        r.grid[2] = static_cast<unsigned>(g.N);
        r.block[0] = 32;
        r.block[1] = 8;
        if (g.N > 65535) return false;
        r.arg(x.ptr); r.arg(s.colBuffer); r.arg(g.C); r.arg(hw); r.arg(p.C);
        ls.push_back(r);
      }
      p.input = s.colBuffer;
    } else {
      p.input = x.ptr;
    }
    p.weight = dry ? 0 : nhwcWeight(s, n.inputs[1], p.C, K);
    if (wgmma) {
      if ((g.Co + wgmma->bn - 1) / wgmma->bn > 65535) return false;
      p.splits = 1;
      p.kTilesPerSplit = static_cast<int>(K / 64);
      Launch l;
      l.fn = fns.at(wgmma->kernel);
      l.grid[0] = static_cast<unsigned>((M + wgmma->bm - 1) / wgmma->bm);
      l.grid[1] = static_cast<unsigned>((g.Co + wgmma->bn - 1) / wgmma->bn);
      l.block[0] = static_cast<unsigned>(wgmma->threads);
      l.shared = static_cast<unsigned>(wgmma->sharedBytes());
      l.arg(p);
      ls.push_back(l);
    } else if (!nhwcGemmLaunches(s, dry, *tile, c4 ? tile->kernelC4 : tile->kernel, p, ls)) {
      return false;
    }
    chosen[ni] = tactic;
    out.insert(out.end(), ls.begin(), ls.end());
    return true;
  }

  // FP16 [C][Co] copy of 1 x 1 convolution weights [Co][C][1][1] (once per executor).
  CUdeviceptr nhwcGemmWeightKN(Spec& s, const std::string& name) {
    const bool isWeight = plan.graph.initializers.count(name) && !s.host.count(name);
    const std::string key = name + "#kn";
    if (isWeight) {
      auto it = weightBuffers16.find(key);
      if (it != weightBuffers16.end()) return it->second.first;
    }
    const Tensor* t = hostValue(s, name);
    if (!t || !isFloatType(t->dtype) || t->shape.size() != 4) throw BuildError(ErrorCode::kInternal, "bad convolution weight '" + name + "'");
    const int64_t co = t->shape[0], c = t->shape[1];
    const std::vector<float> v = toFloatVector(*t);
    std::vector<uint16_t> h(static_cast<size_t>(co * c));
    for (int64_t o = 0; o < co; ++o)
      for (int64_t i = 0; i < c; ++i) h[static_cast<size_t>(i * co + o)] = floatToHalf(v[static_cast<size_t>(o * c + i)]);
    return uploadKept(s, weightBuffers16, key, isWeight, h.data(), h.size() * 2, "upload 1x1 weights");
  }

  // A 1 x 1 convolution between FP16 NHWC values is a plain GEMM over the pixels it reads,
  // Y[M = N*OH*OW][Co] = X[M][C] * W^T[C][Co], so cuBLASLt (wgmma kernels on Hopper) runs it in one
  // launch (strided: after packing those pixels): FP16 in and out, bias + ReLU in its epilogue, the
  // FP16 NHWC residual as C (beta = 1; the epilogue applies after the addition, like ours).
  bool lowerConvNhwcLt(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    if (!ltApi || !nhwcEnabled || !nhwcCublasLtConvEligible(plan.graph, n)) return false;
    Operand x = operand(s, n, 0, dry), y = output(s, n, 0);
    const Tensor* wt = hostInput(s, n, 1);
    if (!x.ok || !y.ok || !x.nhwc16 || !y.nhwc16 || !wt || x.shape.size() != 4 || wt->shape.size() != 4 || !onlyFirstOutput(n)) return false;
    PfConvParams g{};
    if (!convGeometry(n, x.shape, wt->shape, y.shape, g) || g.groups != 1 || g.KH != 1 || g.KW != 1 || g.sh < 1 || g.sw < 1 || g.ph ||
        g.pw || g.OH != (g.H - 1) / g.sh + 1 || g.OW != (g.W - 1) / g.sw + 1 || g.C % 8 || g.Co % 8)
      return false;
    // Strided: the pixels it reads are packed first (pf_subsample_nhwc16 into the column buffer).
    const bool strided = g.sh != 1 || g.sw != 1;
    const size_t packed = strided ? static_cast<size_t>(g.N) * g.OH * g.OW * g.C * 2 : 0;
    if (strided && !fns.count("pf_subsample_nhwc16")) return false;
    PfEpilogue e{};
    e.act = kUnaryCopy;
    if (n.opType == "FusedConv" && !epilogueFromAttrs(n, e)) return false;
    if (e.act != kUnaryCopy && e.act != kUnaryRelu) return false;
    const bool hasBias = n.inputs.size() > 2 && !n.inputs[2].empty();
    if (hasBias) {
      const Tensor* b = hostInput(s, n, 2);
      if (!b || !isFloatType(b->dtype) || b->numel() != g.Co) return false;
    }
    LtGemmDesc d;
    d.M = static_cast<int64_t>(g.N) * g.OH * g.OW;
    d.N = g.Co;
    d.K = g.C;
    d.lda = g.C; d.ldb = g.Co; d.ldy = g.Co;  // weights [C][Co] (the FP16 transformer GEMMs' layout)
    d.abType = lt::kR16F;
    d.yType = lt::kR16F;
    d.computeType = lt::kCompute32F;
    if (n.opType == "FusedConv" && n.inputs.size() > 3 && !n.inputs[3].empty()) {
      Operand r = operand(s, n, 3, dry);
      if (!r.ok || !r.nhwc16 || r.shape != y.shape) return false;
      d.C = r.ptr;
      d.beta = 1.f;
    }
    d.epilogue = e.act == kUnaryRelu ? (hasBias ? lt::kEpiReluBias : lt::kEpiRelu) : (hasBias ? lt::kEpiBias : lt::kEpiDefault);
    if (dry) {  // the packing buffer; lowerConv sizes the tile fallback's workspace
      s.colBytes = std::max(s.colBytes, packed);
      return true;
    }
    if (!ensureLt() || (strided && (!s.colBuffer || s.colBytes < packed))) return false;
    std::vector<Launch> ls;
    d.A = x.ptr;
    if (strided) {
      Launch pack = elementwiseLaunch("pf_subsample_nhwc16", static_cast<int64_t>(packed / 16));
      pack.arg(x.ptr); pack.arg(s.colBuffer); pack.arg(g.N); pack.arg(g.H); pack.arg(g.W); pack.arg(g.C);
      pack.arg(g.OH); pack.arg(g.OW); pack.arg(g.sh); pack.arg(g.sw);
      ls.push_back(pack);
      d.A = s.colBuffer;
    }
    d.Y = y.ptr;
    d.B = nhwcGemmWeightKN(s, n.inputs[1]);
    if (hasBias) d.bias = deviceConstHalf(s, n.inputs[2]);
    Launch l;
    l.lt = makeLt(d);
    if (!l.lt) return false;
    ls.push_back(l);
    // One trial call at load time: a refusal (cuBLASLt may reject a configuration its heuristic
    // offered) falls back to the NHWC kernels here instead of failing the run.
    try {
      for (const Launch& t : ls) t(stream);
      checkCuda(cu.cuStreamSynchronize(stream), "cuBLASLt trial");
    } catch (const BuildError& err) {
      cu.cuStreamSynchronize(stream);
      if (!nhwcLtWarned) {
        nhwcLtWarned = true;
        std::cerr << "planforge: warning: cuBLASLt refused the 1x1 convolution '" << n.name << "' (M " << d.M << ", N " << d.N << ", K "
                  << d.K << ", epilogue " << d.epilogue << (d.C ? ", residual" : "") << ", pointer alignment "
                  << ((d.A | d.B | d.C | d.Y | d.bias) & 255) << "): " << err.what()
                  << "; such layers run on the NHWC kernels\n";
      }
      return false;
    }
    chosen[nodeIndex(n)] = kTacticConvNhwcCublasLt;
    out.insert(out.end(), ls.begin(), ls.end());
    return true;
  }

  // The GEMM launch (+ split-K reduce) of an NHWC layer whose parameters are filled but for the
  // split; sizes the split-K workspace of every tile the autotuner may time.
  bool nhwcGemmLaunches(Spec& s, bool dry, const NhwcConvTile& tile, const char* kernel, PfConvNhwcParams p, std::vector<Launch>& ls) {
    const long long M = p.M, Co = p.Co, K = p.K;
    if (dry)
      for (const auto& t : nhwcConvTiles()) {
        if (&t != &tile && !options.autotune) continue;
        int per = 0;
        const int sp = nhwcSplitsHere(t, M, Co, K, &per);
        if (sp > 1) s.workspaceBytes = std::max<size_t>(s.workspaceBytes, static_cast<size_t>(sp) * M * Co * 4);
      }
    p.splits = nhwcSplitsHere(tile, M, Co, K, &p.kTilesPerSplit);
    if (p.splits > 1) {
      if (!dry && (!s.workspace || s.workspaceBytes < static_cast<size_t>(p.splits) * M * Co * 4)) return false;
      p.workspace = s.workspace;
    }
    if ((Co + tile.bn - 1) / tile.bn > 65535) return false;
    Launch l;
    l.fn = fns.at(kernel);
    l.grid[0] = static_cast<unsigned>((M + tile.bm - 1) / tile.bm);
    l.grid[1] = static_cast<unsigned>((Co + tile.bn - 1) / tile.bn);
    l.grid[2] = static_cast<unsigned>(p.splits);
    l.block[0] = static_cast<unsigned>(tile.threads);
    l.shared = static_cast<unsigned>(tile.sharedBytes());
    l.arg(p);
    ls.push_back(l);
    if (p.splits > 1) {
      Launch r = elementwiseLaunch("pf_conv_nhwc_splitk_reduce", M * Co / 2);
      r.arg(p);
      ls.push_back(r);
    }
    return true;
  }

  // Weights of a GEMM on the NHWC kernels: FP16 [N][K] (the kernel's [Co][KH = 1][KW = 1][C]) from
  // W [K][N] (MatMul, Gemm) or [N][K] (Gemm with transB).
  CUdeviceptr nhwcGemmWeight(Spec& s, const std::string& name, bool transB) {
    const bool isWeight = plan.graph.initializers.count(name) && !s.host.count(name);
    const std::string key = name + (transB ? "#nk" : "#kn");
    if (isWeight) {
      auto it = weightBuffers16.find(key);
      if (it != weightBuffers16.end()) return it->second.first;
    }
    const Tensor* t = hostValue(s, name);
    if (!t || !isFloatType(t->dtype) || t->shape.size() != 2) throw BuildError(ErrorCode::kInternal, "bad GEMM weight '" + name + "'");
    const int64_t rows = t->shape[0], cols = t->shape[1], N = transB ? rows : cols, K = transB ? cols : rows;
    const std::vector<float> v = toFloatVector(*t);
    std::vector<uint16_t> h(static_cast<size_t>(N * K));
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N; ++j) h[static_cast<size_t>(j * K + k)] = floatToHalf(v[static_cast<size_t>(transB ? j * K + k : k * N + j)]);
    return uploadKept(s, weightBuffers16, key, isWeight, h.data(), h.size() * 2, "upload GEMM weights");
  }

  // A GEMM / MatMul with FP16 weights on the NHWC kernels, as a 1 x 1 convolution over M = rows
  // "pixels": the FP32 row-major input is cast to FP16 (pf_cast_f16), the output written FP32
  // row-major (= NCHW with 1 x 1 pixels), bias / residual / activation / rounding in the epilogue.
  bool lowerGemmNhwc(Spec& s, const Node& n, bool dry, int64_t tactic, std::vector<Launch>& out) {
    const NhwcConvTile* tile = nhwcConvTile(tactic);
    const size_t ni = nodeIndex(n);
    Operand x = operand(s, n, 0, dry), y = output(s, n, 0);
    const Tensor* wt = hostInput(s, n, 1);
    const bool gemm = n.opType == "Gemm" || n.opType == "FusedGemm";
    const bool transB = gemm && n.attrs.getInt("transB", 0) != 0;
    if (!tile || !nhwcEnabled || !fns.count("pf_cast_f16") || !isF32(x) || !isF32(y) || !wt || wt->shape.size() != 2 || x.shape.empty() ||
        !onlyFirstOutput(n))
      return false;
    if (gemm && (n.attrs.getInt("transA", 0) != 0 || n.attrs.getFloat("alpha", 1.f) != 1.f || n.attrs.getFloat("beta", 1.f) != 1.f)) return false;
    const long long K = transB ? wt->shape[1] : wt->shape[0], N = transB ? wt->shape[0] : wt->shape[1];
    if (x.shape.back() != K || y.shape.back() != N || K % 8 || N % 8) return false;
    const long long M = shapeNumel(x.shape) / K;
    if (shapeNumel(y.shape) != M * N || M >= INT32_MAX || M * K >= INT32_MAX) return false;
    PfConvNhwcParams p{};
    p.N = static_cast<int>(M); p.H = p.W = 1; p.C = static_cast<int>(K); p.Co = static_cast<int>(N); p.OH = p.OW = 1;
    p.KH = p.KW = 1; p.sh = p.sw = 1; p.dh = p.dw = 1;
    p.M = static_cast<int>(M);
    p.K = static_cast<int>(K);
    if (!plan.header.tuned && !tacticOverride.count(ni)) tile = nhwcConvTile(nhwcHeuristicTile(M, N, K, dev.sm, dev.multiprocessors));
    tactic = tile->gemmTactic;
    PfEpilogue e{};
    e.act = kUnaryCopy;
    if ((n.opType == "FusedMatMul" || n.opType == "FusedGemm") && !epilogueFromAttrs(n, e)) return false;
    p.act = e.act;
    p.actAlpha = e.actAlpha;
    p.actBeta = e.actBeta;
    Operand b = operand(s, n, 2, dry);
    if (b.ok) {
      if (!isF32(b) || shapeNumel(b.shape) != N || b.shape.back() != N) return false;
      p.bias = b.ptr;
    }
    if ((n.opType == "FusedMatMul" || n.opType == "FusedGemm") && n.inputs.size() > 3 && !n.inputs[3].empty()) {
      Operand r = operand(s, n, 3, dry);
      if (!isF32(r) || r.shape != y.shape) return false;
      p.residual = r.ptr;
      p.residualNchw = 1;
    }
    p.output = y.ptr;
    p.outputNchw = 1;
    p.roundOutput = roundFused.count(ni) ? 1 : 0;
    std::vector<Launch> ls;
    const size_t staged = static_cast<size_t>(M * K * 2);
    if (dry) {
      s.colBytes = std::max(s.colBytes, staged);
    } else {
      if (!s.colBuffer || s.colBytes < staged) return false;
      const long long cnt = M * K;
      Launch c = elementwiseLaunch("pf_cast_f16", std::max<long long>(1, cnt / 4));
      c.arg(x.ptr); c.arg(s.colBuffer); c.arg(cnt);
      ls.push_back(c);
    }
    p.input = s.colBuffer;
    p.weight = dry ? 0 : nhwcGemmWeight(s, n.inputs[1], transB);
    if (!nhwcGemmLaunches(s, dry, *tile, tile->kernel, p, ls)) return false;
    chosen[ni] = tactic;
    out.insert(out.end(), ls.begin(), ls.end());
    return true;
  }

  // Our implicit-GEMM / depthwise convolution kernels (+ split-K reduce).
  bool ourConvLaunches(Spec& s, PfConvParams p, int64_t tactic, std::vector<Launch>& ls, bool roundDepthwise = false) {
    p.splits = 1;
    Launch l;
    if (tactic == kTacticConvDepthwise) {
      const long long cnt = static_cast<long long>(p.N) * p.Co * p.OH * p.OW;
      l = elementwiseLaunch(roundDepthwise ? "pf_conv_depthwise_round" : "pf_conv_depthwise", cnt);
      l.arg(p);
      ls.push_back(l);
    } else {
      const bool tc = tactic == kTacticConvF16TensorCore;
      l.fn = fns.at(tc ? "pf_conv_f16tc" : "pf_conv_f32");
      const long long cols = static_cast<long long>(p.N) * p.OH * p.OW, M = p.Co / p.groups;
      const long long K = static_cast<long long>(p.C / p.groups) * p.KH * p.KW;
      l.grid[0] = static_cast<unsigned>((cols + 63) / 64);
      l.grid[1] = static_cast<unsigned>((M + 63) / 64);
      const int splits = chooseSplits(static_cast<long long>(l.grid[0]) * l.grid[1] * p.groups, K);
      l.grid[2] = static_cast<unsigned>(p.groups * splits);
      l.block[0] = tc ? 128 : 256;
      if (l.grid[1] > 65535 || l.grid[2] > 65535) return false;
      if (splits > 1) {
        p.splits = splits;
        p.kChunk = chunkFor(K, splits);
        p.splits = static_cast<int>((K + p.kChunk - 1) / p.kChunk);
        l.grid[2] = static_cast<unsigned>(p.groups * p.splits);
        s.workspaceBytes = std::max<size_t>(s.workspaceBytes, static_cast<size_t>(p.groups) * p.splits * M * cols * 4);
        p.workspace = s.workspace;
      }
      l.arg(p);
      ls.push_back(l);
      if (p.splits > 1) {
        Launch r = elementwiseLaunch("pf_conv_splitk_reduce", static_cast<long long>(p.groups) * M * cols);
        r.arg(p);
        ls.push_back(r);
      }
    }
    return true;
  }

  // FP32 layers: exact FP32 (no TF32). FP16 / INT8 layers: FP16 tensor cores on FP32 data
  // (PLANFORGE_CUBLASLT_FP16_COMPUTE=tf32 asks for TF32 instead, for A/B runs).
  static int ltComputeType(const Node& n) {
    if (n.precision != "fp16" && n.precision != "int8") return lt::kCompute32F;
    static const bool tf32 = [] {
      const char* e = std::getenv("PLANFORGE_CUBLASLT_FP16_COMPUTE");
      return e && std::string(e) == "tf32";
    }();
    return tf32 ? lt::kCompute32FFastTF32 : lt::kCompute32FFast16F;
  }

  // cuBLASLt convolution (one group): per image Y[n] (Co x OH*OW) = W (Co x K) . X'[n] (K x OH*OW),
  // strided batched over the images with the weights broadcast (batch stride 0). X' is the input
  // itself for 1x1 stride-1 unpadded convolutions, else pf_im2col's columns, a chunk of images at
  // a time in a buffer of at most kColBytesCap. Residual: beta * C; bias + activation: pf_bias_act.
  //
  // f16 (kTacticConvCublasLtF16): FP16 operands, FP32 accumulation and output. The weights are an
  // FP16 copy uploaded once; the columns are written in FP16 by pf_im2col_h, and a 1x1 stride-1
  // input is cast to FP16 (pf_cast_f16) into the same buffer, a chunk of images at a time.
  bool ltConv(Spec& s, const Node& n, bool dry, const PfConvParams& p, const Operand& y, bool round, bool f16, std::vector<Launch>& ls,
              bool allowBiasC = true) {
    if (p.groups != 1 || !fns.count("pf_im2col") || !fns.count("pf_bias_act")) return false;
    if (f16 && (!fns.count("pf_im2col_h") || !fns.count("pf_cast_f16") || !hostInput(s, n, 1))) return false;
    const long long HW = static_cast<long long>(p.OH) * p.OW, K = static_cast<long long>(p.C) * p.KH * p.KW;
    const bool direct = p.KH == 1 && p.KW == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0 && p.OH == p.H && p.OW == p.W;
    const long long perImage = K * HW, elem = f16 ? 2 : 4;
    const bool useCol = !direct || f16;
    long long chunk = p.N;
    if (useCol) {
      if (perImage >= (1LL << 31)) return false;  // pf_im2col's 32-bit indices
      chunk = std::max<long long>(1, std::min<long long>(p.N, static_cast<long long>(colBytesCap) / (perImage * elem)));
      const size_t need = static_cast<size_t>(chunk * perImage * elem);
      if (dry) {
        s.colBytes = std::max(s.colBytes, need);
        return true;
      }
      if (!s.colBuffer || s.colBytes < need) return false;
    } else if (dry) {
      return true;
    }
    if (!ensureLt()) return false;
    // Bias as C (a Co x HW matrix shared by the images) and ReLU / GELU as cuBLASLt's epilogue where
    // possible (planConvLtEpilogue); the rest in the pf_bias_act pass.
    const bool hostBias = p.epi.bias && n.inputs.size() > 2 && hostInput(s, n, 2);
    // Enabled without a bias too (ReLU / GELU of a residual sum in cuBLASLt), as the dry pass assumed.
    ConvLtEpilogue ce = planConvLtEpilogue(p.epi.bias != 0, p.epi.residual != 0, p.epi.act, round, p.Co, HW,
                                           convEpilogue && (hostBias || !p.epi.bias));
    if ((!hostBias || !allowBiasC) && p.epi.bias) ce = planConvLtEpilogue(true, p.epi.residual != 0, p.epi.act, round, p.Co, HW, false);
    const CUdeviceptr biasC = ce.biasAsC ? biasMatrix(s, n.inputs[2], p.Co, HW) : 0;
    LtGemmDesc d;
    d.M = p.Co; d.N = HW; d.K = K;
    d.lda = K; d.ldb = HW; d.ldy = HW;
    d.strideA = 0; d.strideB = K * HW; d.strideY = static_cast<long long>(p.Co) * HW;
    d.A = f16 ? deviceConstHalf(s, n.inputs[1]) : p.weight;
    d.alpha = p.epi.alpha;
    d.beta = 1.f;
    d.computeType = f16 ? lt::kCompute32F : ltComputeType(n);
    d.abType = f16 ? lt::kR16F : lt::kR32F;
    d.epilogue = ce.ltActivation == kUnaryRelu ? lt::kEpiRelu : ce.ltActivation == kUnaryGeluTanh ? lt::kEpiGelu : lt::kEpiDefault;
    std::vector<Launch> out;
    for (long long n0 = 0; n0 < p.N; n0 += chunk) {
      const long long nImg = std::min<long long>(chunk, p.N - n0);
      if (direct && f16) {
        const long long cnt = nImg * perImage;
        Launch l = elementwiseLaunch("pf_cast_f16", std::max<long long>(1, cnt / 4));
        const CUdeviceptr src = p.input + static_cast<CUdeviceptr>(n0 * perImage * 4), col = s.colBuffer;
        l.arg(src); l.arg(col); l.arg(cnt);
        out.push_back(l);
      } else if (!direct && f16) {
        static const bool h8 = [] {
          const char* e = std::getenv("PLANFORGE_GPU_IM2COL_H8");
          return !(e && std::string(e) == "0");
        }();
        const bool use8 = h8 && fns.count("pf_im2col_h8");
        Launch l = use8 ? elementwiseLaunch("pf_im2col_h8", (nImg * perImage + 7) / 8) : elementwiseLaunch("pf_im2col_h", nImg * perImage);
        const CUdeviceptr col = s.colBuffer;
        l.arg(p.input); l.arg(col);
        for (int v : {p.C, p.H, p.W, p.KH, p.KW, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw, p.OH, p.OW}) l.arg(v);
        l.arg(n0); l.arg(nImg);
        out.push_back(l);
      } else if (!direct) {
        static const bool rowsKernel = [] {
          const char* e = std::getenv("PLANFORGE_GPU_IM2COL_ROWS");
          return e && std::string(e) == "1";
        }();
        Launch l = rowsKernel && fns.count("pf_im2col_rows") ? rowsLaunch("pf_im2col_rows", nImg * K, HW)
                                                               : elementwiseLaunch("pf_im2col", nImg * perImage);
        const CUdeviceptr col = s.colBuffer;
        l.arg(p.input); l.arg(col);
        for (int v : {p.C, p.H, p.W, p.KH, p.KW, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw, p.OH, p.OW}) l.arg(v);
        l.arg(n0); l.arg(nImg);
        out.push_back(l);
      }
      d.B = useCol ? s.colBuffer : p.input + static_cast<CUdeviceptr>(n0 * K * HW * 4);
      const CUdeviceptr yOff = static_cast<CUdeviceptr>(n0 * d.strideY * 4);
      d.Y = p.output + yOff;
      d.C = p.epi.residual ? p.epi.residual + yOff : biasC;
      d.strideC = biasC ? 0 : -1;  // one bias matrix for every image
      d.batch = nImg;
      Launch l;
      l.lt = makeLt(d);
      if (!l.lt && biasC) {  // no algorithm with the bias matrix as C (batch stride 0): the previous epilogue pass
        ++s.stats.convBiasAsCRefused;
        return ltConv(s, n, dry, p, y, round, f16, ls, false);
      }
      if (!l.lt) return false;
      out.push_back(l);
    }
    if (ce.needsPass) {
      const long long cnt = shapeNumel(y.shape), co = p.Co;
      const int r = round ? 1 : 0;
      const CUdeviceptr bias = ce.passBias ? static_cast<CUdeviceptr>(p.epi.bias) : 0;
      const int act = ce.passActivation ? p.epi.act : kUnaryCopy;
      Launch l = elementwiseLaunch("pf_bias_act", cnt);
      l.arg(y.ptr); l.arg(bias); l.arg(cnt); l.arg(co); l.arg(HW);
      l.arg(act); l.arg(p.epi.actAlpha); l.arg(p.epi.actBeta); l.arg(r);
      out.push_back(l);
    }
    if (ce.biasAsC || ce.ltActivation) s.ltEpilogueNodes.insert(nodeIndex(n));
    else s.ltEpilogueNodes.erase(nodeIndex(n));
    ls.insert(ls.end(), out.begin(), out.end());
    return true;
  }

  // cuBLASLt for a GEMM described by our kernel's parameters (row-major strides, batch strides,
  // epilogue). Bias per output column, ReLU and tanh-GELU go into cuBLASLt's epilogue, a
  // same-shape residual (or Gemm's full C) into beta * C; other activations run after, in place.
  //
  // f16 (kTacticGemmCublasLtF16): FP16 operands, FP32 accumulation / C / Y. A host-known operand
  // (the weights) is an FP16 copy uploaded once; an activation operand is cast to FP16 by one
  // pf_cast_f16 pass into the scratch buffer (shared by all layers: one stream).
  bool ltGemm(Spec& s, const Node& n, bool dry, const PfGemmParams& p, long long batch, const Operand& y, bool round, bool f16,
              std::vector<Launch>& ls) {
    LtGemmDesc d;
    d.M = p.M; d.N = p.N; d.K = p.K;
    if (p.M <= 0 || p.N <= 0 || p.K <= 0) return false;
    if (p.sAk == 1 && p.sAm >= p.K) { d.transA = false; d.lda = p.sAm; }
    else if (p.sAm == 1 && p.sAk >= p.M) { d.transA = true; d.lda = p.sAk; }
    else return false;
    if (p.sBn == 1 && p.sBk >= p.N) { d.transB = false; d.ldb = p.sBk; }
    else if (p.sBk == 1 && p.sBn >= p.K) { d.transB = true; d.ldb = p.sBn; }
    else return false;
    d.ldy = p.N;
    d.batch = batch;
    d.strideA = p.batchA; d.strideB = p.batchB; d.strideY = p.M * p.N;
    if (batch > 1 && p.batchB == 0 && !d.transA && d.lda == p.K && p.batchA == p.M * p.K) {  // shared weights: one tall GEMM
      d.M = p.M * batch;
      d.batch = 1;
    }
    const PfEpilogue& e = p.epi;
    d.alpha = e.alpha;
    bool biasEpi = false;
    if (e.bias) {
      if ((e.biasStrideN == 1 || p.N == 1) && e.biasStrideM == 0 && e.beta == 1.f) {
        d.bias = e.bias;
        biasEpi = true;
      } else if (e.biasStrideN == 1 && e.biasStrideM == p.N && !e.residual && batch == 1) {
        d.C = e.bias;  // Gemm's full C matrix
        d.beta = e.beta;
      } else {
        return false;
      }
    }
    if (e.residual) {
      d.C = e.residual;
      d.beta = 1.f;
    }
    int post = kUnaryCopy;
    if (e.act == kUnaryRelu) d.epilogue = biasEpi ? lt::kEpiReluBias : lt::kEpiRelu;
    else if (e.act == kUnaryGeluTanh) d.epilogue = biasEpi ? lt::kEpiGeluBias : lt::kEpiGelu;
    else {
      d.epilogue = biasEpi ? lt::kEpiBias : lt::kEpiDefault;
      post = e.act;
    }
    CUdeviceptr ab16[2] = {0, 0};
    std::vector<Launch> casts;
    // FP16 activations (half_layout.h): read as they are; the output in FP16 too, with an FP16 bias and
    // residual (cuBLASLt's C has Y's type) and no rounding pass (FP16 storage is the rounding).
    bool halfIn[2] = {false, false};
    if (y.half) {
      if (!f16 || (e.bias && !biasEpi) || n.inputs.size() < 3 || (e.bias && !hostInput(s, n, 2))) return false;
      d.yType = lt::kR16F;
      if (biasEpi) d.bias = dry ? 0 : deviceConstHalf(s, n.inputs[2]);
      round = false;
    }
    if (f16) {
      if (!fns.count("pf_cast_f16")) return false;
      size_t need = 0, off[2] = {0, 0};
      long long cnt[2] = {0, 0};
      for (size_t i = 0; i < 2; ++i) {
        if (hostInput(s, n, i)) continue;
        const Operand o = operand(s, n, i, dry);
        if (isHalf(o)) {
          halfIn[i] = true;
          ab16[i] = o.ptr;
          continue;
        }
        if (!isF32(o)) return false;
        cnt[i] = shapeNumel(o.shape);
        off[i] = need;
        need += (static_cast<size_t>(cnt[i]) * 2 + 255) / 256 * 256;
      }
      if (need > kF16ScratchCap) return false;
      if (dry) {
        s.colBytes = std::max(s.colBytes, need);
        return true;
      }
      if (need && (!s.colBuffer || s.colBytes < need)) return false;
      for (size_t i = 0; i < 2; ++i) {
        if (halfIn[i]) continue;
        if (!cnt[i]) {
          ab16[i] = deviceConstHalf(s, n.inputs[i]);
          continue;
        }
        ab16[i] = s.colBuffer + off[i];
        Launch c = elementwiseLaunch("pf_cast_f16", std::max<long long>(1, cnt[i] / 4));
        const CUdeviceptr src = i == 0 ? p.A : p.B;
        c.arg(src); c.arg(ab16[i]); c.arg(cnt[i]);
        casts.push_back(c);
      }
    }
    if (dry) return true;
    if (!ensureLt()) return false;
    d.A = f16 ? ab16[0] : p.A; d.B = f16 ? ab16[1] : p.B; d.Y = p.Y;
    d.computeType = f16 ? lt::kCompute32F : ltComputeType(n);
    d.abType = f16 ? lt::kR16F : lt::kR32F;
    Launch l;
    l.lt = makeLt(d);
    if (!l.lt) return false;
    ls.insert(ls.end(), casts.begin(), casts.end());
    ls.push_back(l);
    if (y.half && post != kUnaryCopy) {  // the activation cuBLASLt lacks, on the FP16 output
      const long long cnt = shapeNumel(y.shape);
      Launch u = elementwiseLaunch("pf_act_h", cnt);
      u.arg(y.ptr); u.arg(cnt); u.arg(post); u.arg(e.actAlpha); u.arg(e.actBeta);
      ls.push_back(u);
    } else if (post != kUnaryCopy || round) {  // activation cuBLASLt lacks and / or the folded RoundToFp16: one pass
      const long long cnt = shapeNumel(y.shape), one = 1;
      const CUdeviceptr noBias = 0;
      const int r = round ? 1 : 0;
      Launch u = elementwiseLaunch("pf_bias_act", cnt);
      u.arg(y.ptr); u.arg(noBias); u.arg(cnt); u.arg(one); u.arg(cnt); u.arg(post); u.arg(e.actAlpha); u.arg(e.actBeta); u.arg(r);
      ls.push_back(u);
    }
    return true;
  }

  // GEMM layers: cuBLASLt when that is the tactic (falling back to our kernels if it cannot take
  // the layer, unless autotune is timing exactly that tactic), else our tiled GEMM.
  bool gemmOrLt(Spec& s, const Node& n, bool dry, const PfGemmParams& p, long long batch, const Operand& y, const Operand& bcast,
                std::vector<Launch>& out) {
    const bool halfGemm = halfGemms.count(nodeIndex(n)) != 0;
    int64_t tactic = halfGemm ? kTacticGemmCublasLtF16 : resolveTactic(s, n, dry);
    if (isNhwcGemmTactic(tactic)) {  // a shape the NHWC kernels do not take (lowerNhwcGemmFirst failed): ours
      if (strictTactic) return false;
      tactic = nchwTactic(n);
    }
    const bool round = roundFused.count(nodeIndex(n)) != 0;
    bool ltDryOk = false;
    if (dry && options.autotune && ltApi && cublasLtF16TacticFor(plan.graph, n) != kTacticReference) {
      std::vector<Launch> sizing;  // the FP16 operand scratch, should the autotuner time that tactic
      ltGemm(s, n, true, p, batch, y, false, true, sizing);
    }
    if (isCublasLtTactic(tactic)) {  // one of this GEMM's (runtimeTactic checked it)
      bool f16 = tactic == kTacticGemmCublasLtF16;
      std::vector<Launch> lts;
      bool ok = fns.count("pf_bias_act") && ltGemm(s, n, dry, p, batch, y, round && !bcast.ok, f16, lts);
      if (halfGemm) {  // FP16 operands / output: nothing else reads or writes them
        if (!ok) return false;
        if (!dry) {
          chosen[nodeIndex(n)] = kTacticGemmCublasLtF16;
          out.insert(out.end(), lts.begin(), lts.end());
        }
        return true;
      }
      if (!ok && f16 && !dry && !strictTactic) {  // no FP16-operand algorithm: FP32 operands on cuBLASLt
        lts.clear();
        f16 = false;
        ok = fns.count("pf_bias_act") && ltGemm(s, n, dry, p, batch, y, round && !bcast.ok, false, lts);
      }
      if (ok && !dry) {
        if (bcast.ok && !broadcastResidualLaunch(y, bcast, lts)) return false;
        if (bcast.ok && round) lts.push_back(roundLaunch(y));
        chosen[nodeIndex(n)] = f16 ? kTacticGemmCublasLtF16 : kTacticGemmCublasLt;
        out.insert(out.end(), lts.begin(), lts.end());
        return true;
      }
      if (strictTactic && !dry) return false;
      ltDryOk = ok && dry;
      tactic = heuristicTactic(plan.graph, n);
    }
    if (!gemmLaunch(s, n, p, batch, tactic, y, bcast, out)) return ltDryOk;
    if (round) out.push_back(roundLaunch(y));
    return true;
  }

  // The tactic of a layer on this machine (autotune override, else preferCublasLt, else the plan's;
  // see runtimeTactic). Counts and warns about cuBLASLt tactics that cannot be honoured here.
  // GEMMs planned on an NHWC tactic try those kernels first (no fallback counting: gemmOrLt
  // resolves the tactic again when they do not apply).
  bool lowerNhwcGemmFirst(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    const int64_t t = runtimeTactic(plan.graph, n, requestedTactic(n), ltApi != nullptr);
    return isNhwcGemmTactic(t) && nhwcUsable(n) && lowerGemmNhwc(s, n, dry, t, out);
  }

  int64_t resolveTactic(Spec& s, const Node& n, bool dry) {
    bool fellBack = false;
    int64_t t = runtimeTactic(plan.graph, n, requestedTactic(n), ltApi != nullptr, &fellBack);
    // NHWC chains are fixed per executor (computeNhwcLayout): a convolution next to an NHWC value
    // takes an NHWC tactic whatever the plan says. Others may still run the NHWC kernels on their
    // own (FP32 NCHW reformatted in, FP32 NCHW out) where the plan says so; never where the path is
    // off (PLANFORGE_GPU_NHWC=0, older cubin, preferCublasLt A/B runs).
    const size_t ni = nodeIndex(n);
    if ((nhwcConvTile(t) || nhwcWgmmaTile(t)) && !nhwcUsable(n)) t = nchwTactic(n);
    else if (!isNhwcConvTactic(t) && nhwcConnected(ni)) t = kTacticConvNhwc128x128;
    if (fellBack && dry) {
      ++s.stats.cublasLtFallbacks;
      if (!ltWarned) {
        ltWarned = true;
        std::cerr << "planforge: warning: layer '" << n.name << "' was tuned for cuBLASLt, which is " << ltDescription()
                  << "; layers tuned for cuBLASLt run on planforge kernels instead\n";
      }
    }
    return t;
  }

  bool gemmLaunch(Spec& s, const Node& n, PfGemmParams p, long long batch, int64_t tactic, const Operand& y,
                  const Operand& bcastResidual, std::vector<Launch>& out) {
    chosen[nodeIndex(n)] = tactic;
    const bool tc = tactic == kTacticGemmF16TensorCore;
    Launch l;
    l.fn = fns.at(tc ? "pf_gemm_f16tc" : "pf_gemm_f32");
    l.grid[0] = static_cast<unsigned>((p.N + 63) / 64);
    l.grid[1] = static_cast<unsigned>((p.M + 63) / 64);
    l.block[0] = tc ? 128 : 256;
    p.splits = 1;
    const int splits = chooseSplits(static_cast<long long>(l.grid[0]) * l.grid[1] * batch, p.K);
    if (splits > 1) {
      p.kChunk = chunkFor(p.K, splits);
      p.splits = static_cast<int>((p.K + p.kChunk - 1) / p.kChunk);
      s.workspaceBytes = std::max<size_t>(s.workspaceBytes, static_cast<size_t>(batch) * p.splits * p.M * p.N * 4);
      p.workspace = s.workspace;
    }
    l.grid[2] = static_cast<unsigned>(batch * p.splits);
    if (batch * p.splits > 65535 || l.grid[1] > 65535) return false;
    std::vector<Launch> ls;
    l.arg(p);
    ls.push_back(l);
    if (p.splits > 1) {
      Launch r = elementwiseLaunch("pf_gemm_splitk_reduce", batch * p.M * p.N);
      r.arg(p);
      r.arg(batch);
      ls.push_back(r);
    }
    if (bcastResidual.ok && !broadcastResidualLaunch(y, bcastResidual, ls)) return false;
    out.insert(out.end(), ls.begin(), ls.end());
    return true;
  }

  size_t nodeIndex(const Node& n) const { return static_cast<size_t>(&n - plan.graph.nodes.data()); }

  bool lowerGemm(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    if (lowerNhwcGemmFirst(s, n, dry, out)) return true;
    Operand a = operand(s, n, 0, dry), b = operand(s, n, 1, dry), y = output(s, n, 0);
    if (!isF32(a) || !isF32(b) || !isF32(y) || a.shape.size() != 2 || b.shape.size() != 2 || y.shape.size() != 2) return false;
    const bool ta = n.attrs.getInt("transA", 0) != 0, tb = n.attrs.getInt("transB", 0) != 0;
    PfGemmParams p{};
    p.M = y.shape[0]; p.N = y.shape[1]; p.K = ta ? a.shape[0] : a.shape[1];
    p.sAm = ta ? 1 : p.K; p.sAk = ta ? p.M : 1;
    p.sBk = tb ? 1 : p.N; p.sBn = tb ? p.K : 1;
    p.A = a.ptr; p.B = b.ptr; p.Y = y.ptr;
    PfEpilogue& e = p.epi;
    e.alpha = n.attrs.getFloat("alpha", 1.f);
    e.beta = n.attrs.getFloat("beta", 1.f);
    if (n.opType == "FusedGemm" && !epilogueFromAttrs(n, e)) return false;
    Operand c = operand(s, n, 2, dry);
    if (c.ok) {
      if (!isF32(c) || c.shape.size() > 2) return false;
      const int64_t cm = c.shape.size() == 2 ? c.shape[0] : 1, cn = c.shape.empty() ? 1 : c.shape.back();
      if ((cm != 1 && cm != p.M) || (cn != 1 && cn != p.N)) return false;
      e.bias = c.ptr;
      e.biasStrideN = cn == 1 ? 0 : 1;
      e.biasStrideM = cm == 1 ? 0 : cn;
    }
    Operand bcastResidual;
    if (n.opType == "FusedGemm" && n.inputs.size() > 3 && !n.inputs[3].empty()) {
      Operand r = operand(s, n, 3, dry);
      if (!isF32(r)) return false;
      if (r.shape == y.shape) e.residual = r.ptr;
      else if (e.act == kUnaryCopy) bcastResidual = r;
      else return false;
    }
    return gemmOrLt(s, n, dry, p, 1, y, bcastResidual, out);
  }

  bool lowerMatMul(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    const bool halfGemm = halfGemms.count(nodeIndex(n)) != 0;
    if (!halfGemm && lowerNhwcGemmFirst(s, n, dry, out)) return true;
    Operand a = operand(s, n, 0, dry), b = operand(s, n, 1, dry), y = output(s, n, 0);
    auto activation = [&](const Operand& o) { return isF32(o) || (halfGemm && isHalf(o)); };
    if (!activation(a) || !isF32(b) || !activation(y) || a.shape.size() < 2 || b.shape.size() < 2 || y.shape.size() < 2) return false;
    PfGemmParams p{};
    p.M = a.shape[a.shape.size() - 2]; p.K = a.shape.back(); p.N = b.shape.back();
    if (b.shape[b.shape.size() - 2] != p.K || y.shape[y.shape.size() - 2] != p.M || y.shape.back() != p.N) return false;
    const Shape yb(y.shape.begin(), y.shape.end() - 2), ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
    const long long batch = shapeNumel(yb);
    auto batchStride = [&](const Shape& xb, long long matrix, long long& stride) {
      if (shapeNumel(xb) == 1) { stride = 0; return true; }
      Shape padded(yb.size() - std::min(yb.size(), xb.size()), 1);
      padded.insert(padded.end(), xb.begin(), xb.end());
      if (padded != yb) return false;
      stride = matrix;
      return true;
    };
    if (!batchStride(ab, p.M * p.K, p.batchA) || !batchStride(bb, p.K * p.N, p.batchB)) return false;
    Operand bcastResidual;
    p.sAm = p.K; p.sAk = 1; p.sBk = p.N; p.sBn = 1;
    p.A = a.ptr; p.B = b.ptr; p.Y = y.ptr;
    PfEpilogue& e = p.epi;
    e.alpha = 1.f;
    e.beta = 1.f;
    if (n.opType == "FusedMatMul") {
      if (!epilogueFromAttrs(n, e)) return false;
      Operand bias = operand(s, n, 2, dry);
      if (bias.ok) {
        if (!isF32(bias)) return false;
        const int64_t bn = shapeNumel(bias.shape);
        if (bn == p.N && !bias.shape.empty() && bias.shape.back() == p.N) {
          e.biasStrideN = 1;
          e.bias = bias.ptr;
        } else if (bn == 1) {
          e.bias = bias.ptr;
        } else if (e.act == kUnaryCopy) {
          bcastResidual = bias;  // e.g. an attention mask [B,1,1,S]: added after the GEMM
        } else {
          return false;
        }
      }
      if (n.inputs.size() > 3 && !n.inputs[3].empty()) {
        Operand r = operand(s, n, 3, dry);
        if (!activation(r) || r.half != y.half) return false;
        if (r.shape == y.shape) e.residual = r.ptr;
        else if (e.act == kUnaryCopy && !bcastResidual.ok && !halfGemm) bcastResidual = r;
        else return false;
      }
    }
    if (halfGemm && bcastResidual.ok) return false;
    return gemmOrLt(s, n, dry, p, batch, y, bcastResidual, out);
  }

  bool lowerPool(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    Operand x = operand(s, n, 0, dry), y = output(s, n, 0);
    if (x.nhwc16 || y.nhwc16) return lowerPoolNhwc(n, x, y, out);
    if (!isF32(x) || !isF32(y) || x.shape.size() != 4 || !onlyFirstOutput(n)) return false;
    const std::vector<int64_t> k = n.attrs.getInts("kernel_shape"), st = n.attrs.getInts("strides", {1, 1}),
                               dil = n.attrs.getInts("dilations", {1, 1});
    if (k.size() != 2 || st.size() != 2 || dil.size() != 2) return false;
    const int H = static_cast<int>(x.shape[2]), W = static_cast<int>(x.shape[3]), OH = static_cast<int>(y.shape[2]), OW = static_cast<int>(y.shape[3]);
    int ph = 0, pw = 0;
    if (!poolPads(n, H, W, OH, OW, k, st, dil, ph, pw)) return false;
    int mode = 0;
    if (n.opType == "AveragePool") mode = n.attrs.getInt("count_include_pad", 0) ? 1 : 2;
    const long long nc = x.shape[0] * x.shape[1];
    if (nc * OH * OW >= UINT32_MAX) return false;  // 32-bit index math in the kernel
    Launch l = elementwiseLaunch("pf_pool2d", nc * OH * OW);
    l.arg(x.ptr); l.arg(y.ptr); l.arg(nc); l.arg(H); l.arg(W); l.arg(OH); l.arg(OW);
    l.arg(static_cast<int>(k[0])); l.arg(static_cast<int>(k[1])); l.arg(static_cast<int>(st[0])); l.arg(static_cast<int>(st[1]));
    l.arg(ph); l.arg(pw); l.arg(static_cast<int>(dil[0])); l.arg(static_cast<int>(dil[1])); l.arg(mode);
    out.push_back(l);
    return true;
  }

  // Leading pads of a 2-D pooling layer (explicit or auto_pad); false for malformed pads.
  static bool poolPads(const Node& n, int H, int W, int OH, int OW, const std::vector<int64_t>& k, const std::vector<int64_t>& st,
                       const std::vector<int64_t>& dil, int& ph, int& pw) {
    ph = pw = 0;
    const std::string autoPad = n.attrs.getString("auto_pad", "NOTSET");
    if (autoPad == "NOTSET") {
      const std::vector<int64_t> pads = n.attrs.getInts("pads", {0, 0, 0, 0});
      if (pads.size() != 4) return false;
      ph = static_cast<int>(pads[0]);
      pw = static_cast<int>(pads[1]);
    } else if (autoPad != "VALID") {
      const int th = std::max<int>(0, (OH - 1) * st[0] + (k[0] - 1) * dil[0] + 1 - H), tw = std::max<int>(0, (OW - 1) * st[1] + (k[1] - 1) * dil[1] + 1 - W);
      ph = autoPad == "SAME_LOWER" ? th - th / 2 : th / 2;
      pw = autoPad == "SAME_LOWER" ? tw - tw / 2 : tw / 2;
    }
    return true;
  }

  // MaxPool from FP16 NHWC to FP16 NHWC (computeNhwcLayout makes both sides NHWC or neither).
  bool lowerPoolNhwc(const Node& n, const Operand& x, const Operand& y, std::vector<Launch>& out) {
    if (!x.nhwc16 || !y.nhwc16 || !nhwcPoolable(n) || x.shape.size() != 4 || x.shape[1] % 8) return false;
    const std::vector<int64_t> k = n.attrs.getInts("kernel_shape"), st = n.attrs.getInts("strides", {1, 1}),
                               dil = n.attrs.getInts("dilations", {1, 1});
    const int N = static_cast<int>(x.shape[0]), C = static_cast<int>(x.shape[1]), H = static_cast<int>(x.shape[2]), W = static_cast<int>(x.shape[3]);
    const int OH = static_cast<int>(y.shape[2]), OW = static_cast<int>(y.shape[3]);
    int ph = 0, pw = 0;
    if (!poolPads(n, H, W, OH, OW, k, st, dil, ph, pw)) return false;
    Launch l = elementwiseLaunch("pf_maxpool_nhwc16", static_cast<long long>(N) * OH * OW * C / 8);
    l.arg(x.ptr); l.arg(y.ptr); l.arg(N); l.arg(H); l.arg(W); l.arg(C); l.arg(OH); l.arg(OW);
    l.arg(static_cast<int>(k[0])); l.arg(static_cast<int>(k[1])); l.arg(static_cast<int>(st[0])); l.arg(static_cast<int>(st[1]));
    l.arg(ph); l.arg(pw); l.arg(static_cast<int>(dil[0])); l.arg(static_cast<int>(dil[1]));
    out.push_back(l);
    return true;
  }

  Launch rowLaunch(const char* fn, long long rows) {
    Launch l;
    l.fn = fns.at(fn);
    l.grid[0] = static_cast<unsigned>(std::max<long long>(1, std::min<long long>(rows, 65535)));
    l.block[0] = 256;
    return l;
  }

  bool lowerRowReduce(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    Operand x = operand(s, n, 0, dry), y = output(s, n, 0);
    if (x.nhwc16) {  // GlobalAveragePool of an FP16 NHWC value: FP32 [N][C][1][1]
      if (n.opType != "GlobalAveragePool" || !isF32(y) || x.shape.size() != 4 || !onlyFirstOutput(n)) return false;
      const int N = static_cast<int>(x.shape[0]), C = static_cast<int>(x.shape[1]), hw = static_cast<int>(x.shape[2] * x.shape[3]);
      Launch l = elementwiseLaunch("pf_gap_nhwc16", static_cast<long long>(N) * C);
      l.arg(x.ptr); l.arg(y.ptr); l.arg(N); l.arg(hw); l.arg(C);
      out.push_back(l);
      if (roundFused.count(nodeIndex(n))) out.push_back(roundLaunch(y));  // the folded RoundToFp16
      return true;
    }
    if ((x.half || y.half) && n.opType == "LayerNormalization") return lowerLayerNormHalf(s, n, dry, x, y, out);
    if (!isF32(x) || !isF32(y) || !onlyFirstOutput(n) || x.shape.empty()) return false;
    const size_t r = x.shape.size();
    const long long total = shapeNumel(x.shape);
    long long len = 0;
    if (n.opType == "GlobalAveragePool") {
      if (r < 3) return false;
      len = shapeNumel(Shape(x.shape.begin() + 2, x.shape.end()));
    } else if (n.opType == "ReduceMean") {
      std::vector<int64_t> axes = n.attrs.getInts("axes");
      if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
        const Tensor* t = hostInput(s, n, 1);
        if (!t) return false;
        axes = t->toInt64Vector();
      }
      if (axes.empty()) return false;
      for (auto& a : axes) a = normAxis(a, r);
      std::sort(axes.begin(), axes.end());
      for (size_t i = 0; i < axes.size(); ++i)
        if (axes[i] != static_cast<int64_t>(r - axes.size() + i)) return false;
      len = shapeNumel(Shape(x.shape.end() - axes.size(), x.shape.end()));
    } else {
      const bool legacy = plan.graph.opset < 13;
      const int64_t axis = normAxis(n.attrs.getInt("axis", (n.opType == "LayerNormalization" || !legacy) ? -1 : 1), r);
      if (axis < 0 || axis >= static_cast<int64_t>(r)) return false;
      if ((n.opType == "Softmax" || n.opType == "LogSoftmax") && !legacy && axis != static_cast<int64_t>(r) - 1) return false;
      len = shapeNumel(Shape(x.shape.begin() + axis, x.shape.end()));
    }
    if (len <= 0) return false;
    const long long rows = total / len;
    if (n.opType == "GlobalAveragePool" || n.opType == "ReduceMean") {
      Launch l = rowLaunch(roundFused.count(nodeIndex(n)) ? "pf_row_mean_round" : "pf_row_mean", rows);
      l.arg(x.ptr); l.arg(y.ptr); l.arg(rows); l.arg(len);
      out.push_back(l);
    } else if (n.opType == "LayerNormalization") {
      Operand g = operand(s, n, 1, dry), b = operand(s, n, 2, dry);
      if (!isF32(g) || shapeNumel(g.shape) != len || (b.ok && (!isF32(b) || shapeNumel(b.shape) != len))) return false;
      const float eps = n.attrs.getFloat("epsilon", 1e-5f);
      Launch l = rowLaunch(roundFused.count(nodeIndex(n)) ? "pf_layernorm_round" : "pf_layernorm", rows);
      const CUdeviceptr bp = b.ok ? b.ptr : 0;
      l.arg(x.ptr); l.arg(g.ptr); l.arg(bp); l.arg(y.ptr); l.arg(rows); l.arg(len); l.arg(eps);
      out.push_back(l);
    } else {
      const int logSoftmax = n.opType == "LogSoftmax" ? 1 : 0;
      Launch l = rowLaunch(roundFused.count(nodeIndex(n)) ? "pf_softmax_round" : "pf_softmax", rows);
      l.arg(x.ptr); l.arg(y.ptr); l.arg(rows); l.arg(len); l.arg(logSoftmax);
      out.push_back(l);
    }
    return true;
  }

  // QuantizeLinear / DequantizeLinear with 8-bit integers and host-known scales / zero points (INT8 plans'
  // activation Q/DQ pairs; their weights' DequantizeLinear is folded on the host).
  bool lowerQdq(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    const bool quant = n.opType == "QuantizeLinear";
    const char* fn = quant ? "pf_quantize_linear" : "pf_dequantize_linear";
    if (!fns.count(fn) || !onlyFirstOutput(n)) return false;
    Operand x = operand(s, n, 0, dry), y = output(s, n, 0);
    const Tensor* scale = hostInput(s, n, 1);
    const Tensor* zp = hostInput(s, n, 2);
    if (!x.ok || !y.ok || x.nhwc16 || x.half || !scale || !isFloatType(scale->dtype) || x.shape != y.shape) return false;
    const DataType q = quant ? y.dtype : x.dtype;
    if ((q != DataType::kInt8 && q != DataType::kUint8) || (quant ? !isF32(x) : !isF32(y))) return false;
    if (n.inputs.size() > 2 && !n.inputs[2].empty() && (!zp || zp->dtype != q || zp->numel() != scale->numel())) return false;
    long long dim = 1, inner = 1;
    if (scale->numel() != 1 || scale->shape.size() > 1) {  // per axis
      if (scale->shape.size() != 1) return false;
      const int64_t axis = normAxis(n.attrs.getInt("axis", 1), x.shape.size());
      if (axis < 0 || axis >= static_cast<int64_t>(x.shape.size()) || x.shape[axis] != scale->numel()) return false;
      dim = x.shape[axis];
      inner = shapeNumel(Shape(x.shape.begin() + axis + 1, x.shape.end()));
    }
    const long long cnt = shapeNumel(x.shape);
    const int isSigned = q == DataType::kInt8 ? 1 : 0;
    const CUdeviceptr sp = dry ? 0 : deviceConst(s, n.inputs[1]), zpp = zp && !dry ? deviceConst(s, n.inputs[2]) : 0;
    Launch l = elementwiseLaunch(fn, cnt);
    l.arg(x.ptr); l.arg(y.ptr); l.arg(cnt); l.arg(sp); l.arg(zpp); l.arg(dim); l.arg(inner); l.arg(isSigned);
    out.push_back(l);
    return true;
  }

  // LayerNormalization over the last axis reading and / or writing FP16 activations (half_layout.h).
  bool lowerLayerNormHalf(Spec& s, const Node& n, bool dry, const Operand& x, const Operand& y, std::vector<Launch>& out) {
    if (!(isF32(x) || isHalf(x)) || !(isF32(y) || isHalf(y)) || !onlyFirstOutput(n) || x.shape.empty() || x.shape != y.shape) return false;
    if (normAxis(n.attrs.getInt("axis", -1), x.shape.size()) != static_cast<int64_t>(x.shape.size()) - 1) return false;
    const long long len = x.shape.back(), rows = shapeNumel(x.shape) / std::max<long long>(1, len);
    Operand g = operand(s, n, 1, dry), b = operand(s, n, 2, dry);
    if (!isF32(g) || shapeNumel(g.shape) != len || (b.ok && (!isF32(b) || shapeNumel(b.shape) != len))) return false;
    const float eps = n.attrs.getFloat("epsilon", 1e-5f);
    const int xHalf = x.half ? 1 : 0, yHalf = y.half ? 1 : 0, round = !y.half && roundFused.count(nodeIndex(n)) ? 1 : 0;
    const CUdeviceptr bp = b.ok ? b.ptr : 0;
    Launch l = rowLaunch("pf_layernorm_io", rows);
    l.arg(x.ptr); l.arg(xHalf); l.arg(g.ptr); l.arg(bp); l.arg(y.ptr); l.arg(yHalf); l.arg(rows); l.arg(len); l.arg(eps); l.arg(round);
    out.push_back(l);
    return true;
  }

  // Data movement, casts and logic for tensors of any element type: Transpose, Gather, Expand, Cast,
  // And / Or / Xor / Not. Float Transpose / Gather run on pf_copy_nd / pf_gather (in every cubin); the
  // rest needs this cubin's any-type kernels (without them a BERT with an attention_mask input ran 4
  // layers on the CPU reference and had no CUDA graph).
  static int castCode(DataType t) {
    switch (t) {
      case DataType::kFloat: return 0;
      case DataType::kInt64: return 1;
      case DataType::kInt32: return 2;
      case DataType::kBool: return 3;
      case DataType::kUint8: return 4;
      case DataType::kInt8: return 5;
      default: return -1;
    }
  }
  bool lowerAnyType(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    Operand y = output(s, n, 0);
    auto plain = [](const Operand& o) { return o.ok && !o.nhwc16 && !o.half; };
    if (!plain(y) || !onlyFirstOutput(n) || y.shape.size() > kMaxRank || castCode(y.dtype) < 0) return false;
    const bool f32 = isF32(y);
    if (!(f32 && (n.opType == "Transpose" || n.opType == "Gather")))
      for (const char* k : {"pf_cast", "pf_logical", "pf_copy_nd_bytes", "pf_gather_bytes"})
        if (!fns.count(k)) return false;  // a plan with an older cubin: the CPU reference runs these
    const long long cnt = shapeNumel(y.shape);
    const int bytes = static_cast<int>(dataTypeSize(y.dtype));
    Operand x = operand(s, n, 0, dry);
    if (!plain(x)) return false;
    PfStrides st{};
    st.rank = std::max(1, static_cast<int>(y.shape.size()));
    st.dims[0] = 1;
    for (size_t d = 0; d < y.shape.size(); ++d) st.dims[d] = y.shape[d];
    const Shape ys = contiguousStrides(y.shape);
    if (n.opType == "Cast") {
      const int from = castCode(x.dtype), to = castCode(y.dtype);
      if (from < 0 || x.shape != y.shape) return false;
      Launch l = elementwiseLaunch("pf_cast", cnt);
      l.arg(x.ptr); l.arg(y.ptr); l.arg(cnt); l.arg(from); l.arg(to);
      out.push_back(l);
      return true;
    }
    if (n.opType == "And" || n.opType == "Or" || n.opType == "Xor" || n.opType == "Not") {
      const int op = n.opType == "And" ? 0 : n.opType == "Or" ? 1 : n.opType == "Xor" ? 2 : 3;
      Operand b = op == 3 ? x : operand(s, n, 1, dry);
      if (!plain(b) || x.dtype != DataType::kBool || b.dtype != DataType::kBool || y.dtype != DataType::kBool) return false;
      if (!y.shape.empty() && (!broadcastStrides(y.shape, x.shape, st.a) || !broadcastStrides(y.shape, b.shape, st.b))) return false;
      Launch l = elementwiseLaunch("pf_logical", cnt);
      l.arg(x.ptr); l.arg(b.ptr); l.arg(y.ptr); l.arg(cnt); l.arg(op); l.arg(st);
      out.push_back(l);
      return true;
    }
    if (x.dtype != y.dtype) return false;
    if (n.opType == "Expand" || n.opType == "Transpose") {
      if (n.opType == "Expand") {
        if (!y.shape.empty() && !broadcastStrides(y.shape, x.shape, st.a)) return false;
      } else {
        const size_t r = x.shape.size();
        std::vector<int64_t> perm = n.attrs.getInts("perm");
        if (perm.empty())
          for (size_t i = 0; i < r; ++i) perm.push_back(static_cast<int64_t>(r - 1 - i));
        if (perm.size() != r || r == 0 || r != y.shape.size()) return false;
        const Shape xs = contiguousStrides(x.shape);
        for (size_t d = 0; d < r; ++d) st.a[d] = xs[static_cast<size_t>(perm[d])];
      }
      for (size_t d = 0; d < y.shape.size(); ++d) st.b[d] = ys[d];
      Launch l = elementwiseLaunch(f32 ? "pf_copy_nd" : "pf_copy_nd_bytes", cnt);
      l.arg(x.ptr); l.arg(y.ptr); l.arg(cnt); l.arg(st);
      if (!f32) l.arg(bytes);
      out.push_back(l);
      return true;
    }
    if (n.opType == "Gather") {
      Operand idx = operand(s, n, 1, dry);
      if (!idx.ok || idx.dtype != DataType::kInt64 || x.shape.empty()) return false;
      const int64_t axis = normAxis(n.attrs.getInt("axis", 0), x.shape.size());
      const long long outer = shapeNumel(Shape(x.shape.begin(), x.shape.begin() + axis)), axisDim = x.shape[axis],
                      inner = shapeNumel(Shape(x.shape.begin() + axis + 1, x.shape.end())), nIdx = shapeNumel(idx.shape);
      Launch l = elementwiseLaunch(f32 ? "pf_gather" : "pf_gather_bytes", outer * nIdx * inner);
      l.arg(x.ptr); l.arg(idx.ptr); l.arg(y.ptr); l.arg(outer); l.arg(nIdx); l.arg(axisDim); l.arg(inner);
      if (!f32) l.arg(bytes);
      out.push_back(l);
      return true;
    }
    return false;
  }

  bool lowerConcat(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    Operand y = output(s, n, 0);
    if (!isF32(y) || !onlyFirstOutput(n) || y.shape.size() > kMaxRank) return false;
    const size_t r = y.shape.size();
    if (r == 0) return false;
    const int64_t axis = normAxis(n.attrs.getInt("axis", 0), r);
    const Shape ys = contiguousStrides(y.shape);
    int64_t offset = 0;
    std::vector<Launch> ls;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      Operand x = operand(s, n, i, dry);
      if (!isF32(x) || x.shape.size() != r) return false;
      const long long cnt = shapeNumel(x.shape);
      if (cnt > 0) {
        const Shape xs = contiguousStrides(x.shape);
        PfStrides st{};
        st.rank = static_cast<int>(r);
        for (size_t d = 0; d < r; ++d) {
          st.dims[d] = x.shape[d];
          st.a[d] = xs[d];
          st.b[d] = ys[d];
        }
        const CUdeviceptr dst = y.ptr + static_cast<CUdeviceptr>(offset * ys[axis] * 4);
        Launch l = elementwiseLaunch("pf_copy_nd", cnt);
        l.arg(x.ptr); l.arg(dst); l.arg(cnt); l.arg(st);
        ls.push_back(l);
      }
      offset += x.shape[axis];
    }
    out.insert(out.end(), ls.begin(), ls.end());
    return true;
  }

  bool lowerIsNanWhere(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    Operand y = output(s, n, 0);
    if (!y.ok || y.shape.size() > kMaxRank) return false;
    const long long cnt = shapeNumel(y.shape);
    if (n.opType == "IsNaN") {
      Operand x = operand(s, n, 0, dry);
      if (!isF32(x) || y.dtype != DataType::kBool || x.shape != y.shape) return false;
      Launch l = elementwiseLaunch("pf_isnan", cnt);
      l.arg(x.ptr); l.arg(y.ptr); l.arg(cnt);
      out.push_back(l);
      return true;
    }
    Operand c = operand(s, n, 0, dry), a = operand(s, n, 1, dry), b = operand(s, n, 2, dry);
    if (!c.ok || c.dtype != DataType::kBool || !isF32(a) || !isF32(b) || !isF32(y)) return false;
    PfStrides3 st{};
    st.rank = std::max(1, static_cast<int>(y.shape.size()));
    if (y.shape.empty()) {
      st.dims[0] = 1;
    } else {
      for (size_t d = 0; d < y.shape.size(); ++d) st.dims[d] = y.shape[d];
      if (!broadcastStrides(y.shape, c.shape, st.c) || !broadcastStrides(y.shape, a.shape, st.a) || !broadcastStrides(y.shape, b.shape, st.b))
        return false;
    }
    Launch l = elementwiseLaunch("pf_where", cnt);
    l.arg(c.ptr); l.arg(a.ptr); l.arg(b.ptr); l.arg(y.ptr); l.arg(cnt); l.arg(st);
    out.push_back(l);
    return true;
  }

  // planforge.FusedAttention: FP16 plans on tensor cores for head sizes 32 / 64 / 128, the FP32 SIMT
  // kernel otherwise (head sizes up to 256; larger ones run on the CPU reference).
  bool lowerAttention(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    if (!fns.count("pf_attention") || !onlyFirstOutput(n)) return false;
    Operand q = operand(s, n, 0, dry), k = operand(s, n, 1, dry), v = operand(s, n, 2, dry), m = operand(s, n, 3, dry), y = output(s, n, 0);
    // Q / K / V all FP32 or all FP16 (half_layout.h), y either way; FP16 storage needs the tensor-core kernel.
    const bool qkvHalf = isHalf(q) && isHalf(k) && isHalf(v);
    if (!(qkvHalf || (isF32(q) && isF32(k) && isF32(v))) || !(isF32(y) || isHalf(y)) || q.shape.size() != 3 || k.shape != v.shape ||
        k.shape.size() != 3)
      return false;
    const int64_t heads = n.attrs.getInt("num_heads", 0);
    if (heads <= 0 || q.shape[2] % heads != 0 || k.shape[2] != q.shape[2] || k.shape[0] != q.shape[0] || y.shape != q.shape) return false;
    const int64_t D = q.shape[2] / heads;
    if (D > 256 || heads > 65535 || q.shape[0] > 65535) return false;  // grid y / z limits
    PfAttentionParams p{};
    p.q = q.ptr; p.k = k.ptr; p.v = v.ptr; p.y = y.ptr;
    p.B = static_cast<int>(q.shape[0]); p.H = static_cast<int>(heads); p.Sq = static_cast<int>(q.shape[1]);
    p.Skv = static_cast<int>(k.shape[1]); p.D = static_cast<int>(D);
    p.sqS = q.shape[2]; p.sqB = q.shape[1] * q.shape[2];
    p.skS = p.svS = k.shape[2]; p.skB = p.svB = k.shape[1] * k.shape[2];
    p.syS = p.sqS; p.syB = p.sqB;
    if (m.ok) {
      long long st[kMaxRank] = {};
      if (!isF32(m) || m.shape.size() > 4 || !broadcastStrides({q.shape[0], heads, q.shape[1], k.shape[1]}, m.shape, st)) return false;
      p.mask = m.ptr; p.mB = st[0]; p.mH = st[1]; p.mQ = st[2]; p.mK = st[3];
    }
    p.scale = n.attrs.getFloat("scale", 1.f);
    p.nanToZero = n.attrs.getInt("nan_to_zero", 0) != 0 ? 1 : 0;
    p.roundOutput = !y.half && roundFused.count(nodeIndex(n)) ? 1 : 0;
    p.qkvHalf = qkvHalf ? 1 : 0;
    p.yHalf = y.half ? 1 : 0;
    const std::string tc = "pf_attention_f16_d" + std::to_string(D);
    const bool aligned = ((q.ptr | k.ptr | v.ptr) % 16) == 0;
    Launch l;
    if ((qkvHalf || y.half) && (n.precision != "fp16" || !fns.count(tc) || !aligned)) return false;
    if (n.precision == "fp16" && fns.count(tc) && aligned) {
      l.fn = fns.at(tc);
      l.grid[0] = static_cast<unsigned>((p.Sq + 63) / 64);
    } else {
      l.fn = fns.at("pf_attention");
      l.grid[0] = static_cast<unsigned>((p.Sq + 3) / 4);
    }
    l.grid[1] = static_cast<unsigned>(p.H);
    l.grid[2] = static_cast<unsigned>(p.B);
    l.block[0] = 128;
    l.arg(p);
    out.push_back(l);
    return true;
  }

  // Builds the launches of one layer; false when the GPU cannot run it (the CPU reference will).
  bool lower(Spec& s, const Node& n, bool dry, std::vector<Launch>& out) {
    if (!(n.domain.empty() || n.domain == "ai.onnx" || n.domain == "planforge")) return false;
    const std::string& op = n.opType;
    if (op == "Conv" || op == "FusedConv") return lowerConv(s, n, dry, out);
    if (op == "Gemm" || op == "FusedGemm") return lowerGemm(s, n, dry, out);
    if (op == "MatMul" || op == "FusedMatMul") return lowerMatMul(s, n, dry, out);
    if (op == "MaxPool" || op == "AveragePool") return lowerPool(s, n, dry, out);
    if (op == "GlobalAveragePool" || op == "ReduceMean" || op == "Softmax" || op == "LogSoftmax" || op == "LayerNormalization")
      return lowerRowReduce(s, n, dry, out);
    if (op == "Concat") return lowerConcat(s, n, dry, out);
    if (op == "BatchNormalization") return lowerBatchNorm(s, n, dry, out);
    if (op == "IsNaN" || op == "Where") return lowerIsNanWhere(s, n, dry, out);
    if (op == "FusedAttention") return lowerAttention(s, n, dry, out);
    if (op == "QuantizeLinear" || op == "DequantizeLinear") return lowerQdq(s, n, dry, out);
    if (op == "Cast" || op == "And" || op == "Or" || op == "Xor" || op == "Not" || op == "Expand" || op == "Transpose" || op == "Gather")
      return lowerAnyType(s, n, dry, out);
    if (lowerBinary(s, n, dry, out)) return true;
    return lowerUnary(s, n, dry, out);
  }

  // ---------------------------------------------------------------- execution

  void runCpuStep(Spec& s, const Node& n) {
    checkCuda(cu.cuStreamSynchronize(stream), "synchronize before CPU layer");
    std::vector<Tensor> tmp;
    tmp.reserve(n.inputs.size());
    std::vector<const Tensor*> ins;
    for (const auto& name : n.inputs) {
      if (name.empty()) { ins.push_back(nullptr); continue; }
      if (const Tensor* hv = hostValue(s, name)) { ins.push_back(hv); continue; }
      const Value& v = s.values.at(name);
      if (v.nhwc16) throw BuildError(ErrorCode::kInternal, "layer '" + n.name + "' runs on the CPU but reads FP16 NHWC value '" + name + "'");
      tmp.emplace_back(v.dtype, v.shape);
      Tensor& t = tmp.back();
      if (!t.bytes.empty()) checkCuda(cu.cuMemcpyDtoHAsync(t.bytes.data(), s.storages[v.storage].ptr, t.bytes.size(), stream), "copy to host");
      ins.push_back(&t);
    }
    checkCuda(cu.cuStreamSynchronize(stream), "copy to host");
    std::vector<Tensor> outs = runNode(plan.graph, n, ins);
    for (size_t k = 0; k < n.outputs.size() && k < outs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      const Value& v = s.values.at(n.outputs[k]);
      if (outs[k].dtype != v.dtype || outs[k].shape != v.shape)
        throw BuildError(ErrorCode::kInternal, "layer '" + n.name + "' produced " + dataTypeName(outs[k].dtype) + "[" +
                                                   shapeToString(outs[k].shape) + "], expected " + dataTypeName(v.dtype) + "[" +
                                                   shapeToString(v.shape) + "]");
      if (!outs[k].bytes.empty())
        checkCuda(cu.cuMemcpyHtoDAsync(s.storages[v.storage].ptr, outs[k].bytes.data(), outs[k].bytes.size(), stream), "copy to device");
    }
    checkCuda(cu.cuStreamSynchronize(stream), "copy to device");
  }

  void launchSteps(Spec& s, bool programmatic = false) {
    for (const Step& st : s.steps) {
      if (st.kind == Step::kCpu) runCpuStep(s, plan.graph.nodes[st.node]);
      else for (const Launch& l : st.launches) l(stream, programmatic);
    }
  }

  void execute(Spec& s) {
    if (!s.graphTried && options.cudaGraph && s.stats.cpuLayers == 0) {
      s.graphTried = true;
      if (s.hasLt) {  // cuBLASLt's lazy set-up (kernel loading, attributes) stays out of the capture
        launchSteps(s);
        checkCuda(cu.cuStreamSynchronize(stream), "warm-up before graph capture");
      }
      CUgraph graph = nullptr;
      if (cu.cuStreamBeginCapture(stream, kCaptureModeThreadLocal) == 0) {
        bool ok = true;
        try {
          launchSteps(s, programmaticLaunch);
        } catch (const BuildError&) {
          ok = false;
        }
        const CUresult end = cu.cuStreamEndCapture(stream, &graph);
        if (ok && end == 0 && graph && cu.cuGraphInstantiateWithFlags(&s.graph, graph, 0) == 0) {
          s.stats.cudaGraph = true;
          s.stats.programmaticLaunch = programmaticLaunch;
        } else {
          s.graph = nullptr;
          s.stats.cudaGraphNote = "capture failed (error " + std::to_string(end) + ")";
        }
        if (graph) cu.cuGraphDestroy(graph);
      } else {
        s.stats.cudaGraphNote = "cuStreamBeginCapture failed";
      }
    }
    if (s.graph) checkCuda(cu.cuGraphLaunch(s.graph, stream), "cuGraphLaunch");
    else launchSteps(s);
  }

  void uploadInputs(Spec& s, const std::map<std::string, Tensor>& inputs) {
    for (const auto& name : plan.graph.inputs) {
      const Tensor& t = inputs.at(name);
      const Value& v = s.values.at(name);
      if (!t.bytes.empty()) checkCuda(cu.cuMemcpyHtoDAsync(s.storages[v.storage].ptr, t.bytes.data(), t.bytes.size(), stream), "copy input");
    }
  }

  std::map<std::string, Tensor> downloadOutputs(Spec& s) {
    std::map<std::string, Tensor> out;
    for (const auto& name : plan.graph.outputs) {
      if (const Tensor* hv = hostValue(s, name)) { out[name] = *hv; continue; }
      const Value& v = s.values.at(name);
      Tensor t(v.dtype, v.shape);
      if (!t.bytes.empty()) checkCuda(cu.cuMemcpyDtoHAsync(t.bytes.data(), s.storages[v.storage].ptr, t.bytes.size(), stream), "copy output");
      out[name] = std::move(t);
    }
    checkCuda(cu.cuStreamSynchronize(stream), "synchronize outputs");
    return out;
  }

  void checkInputs(const std::map<std::string, Tensor>& inputs) {
    for (const auto& kv : inputs)
      if (std::find(plan.graph.inputs.begin(), plan.graph.inputs.end(), kv.first) == plan.graph.inputs.end())
        throw BuildError(ErrorCode::kProfile, "unknown input '" + kv.first + "'");
    for (const auto& name : plan.graph.inputs) {
      auto it = inputs.find(name);
      if (it == inputs.end()) throw BuildError(ErrorCode::kProfile, "missing input '" + name + "'");
      const ValueType* t = plan.graph.typeOf(name);
      if (t && t->known() && t->dtype != it->second.dtype)
        throw BuildError(ErrorCode::kProfile, "input '" + name + "' must be " + dataTypeName(t->dtype) + ", got " + dataTypeName(it->second.dtype));
      if (t && t->hasShape) {
        if (t->dims.size() != it->second.shape.size())
          throw BuildError(ErrorCode::kProfile, "input '" + name + "' must be " + t->toString() + ", got " + shapeToString(it->second.shape));
        for (size_t i = 0; i < t->dims.size(); ++i)
          if (t->dims[i] >= 0 && t->dims[i] != it->second.shape[i])
            throw BuildError(ErrorCode::kProfile, "input '" + name + "' must be " + t->toString() + ", got " + shapeToString(it->second.shape));
      }
    }
    checkInputsAgainstProfiles(plan, inputs);
  }
};

GpuExecutor::GpuExecutor(const Plan& plan, const GpuExecutorOptions& options) : impl_(std::make_unique<Impl>(plan, options)) {}
GpuExecutor::~GpuExecutor() = default;

const DeviceInfo& GpuExecutor::device() const { return impl_->dev; }
bool GpuExecutor::kernelsFromPlan() const { return impl_->kernelsFromPlan; }

std::map<std::string, Tensor> GpuExecutor::run(const std::map<std::string, Tensor>& inputs) {
  Impl& m = *impl_;
  m.bind();
  m.checkInputs(inputs);
  Impl::Spec& s = m.specFor(inputs);
  m.uploadInputs(s, inputs);
  m.execute(s);
  return m.downloadOutputs(s);
}

GpuLayerStats GpuExecutor::stats(const std::map<std::string, Tensor>& inputs) {
  Impl& m = *impl_;
  m.bind();
  m.checkInputs(inputs);
  return m.specFor(inputs).stats;
}

std::map<std::string, int64_t> GpuExecutor::chosenTactics(const std::map<std::string, Tensor>& inputs) {
  Impl& m = *impl_;
  m.bind();
  m.checkInputs(inputs);
  Impl::Spec& s = m.specFor(inputs);
  std::map<std::string, int64_t> out;
  for (const auto& st : s.steps) {
    if (st.kind != Impl::Step::kGpu) continue;
    auto it = m.chosen.find(static_cast<size_t>(st.node));
    if (it != m.chosen.end()) out[m.plan.graph.nodes[st.node].name] = it->second;
  }
  return out;
}

GpuLayerStats tunePlan(Plan& plan, const std::map<std::string, Tensor>& inputs, int deviceOrdinal, TimingCache* timingCache) {
  GpuExecutorOptions o;
  o.deviceOrdinal = deviceOrdinal;
  o.autotune = true;
  o.timingCache = timingCache;
  o.cudaGraph = false;
  GpuExecutor ex(plan, o);
  const GpuLayerStats st = ex.stats(inputs);
  const std::map<std::string, int64_t> tactics = ex.chosenTactics(inputs);
  for (auto& n : plan.graph.nodes) {
    auto it = tactics.find(n.name);
    if (it != tactics.end()) n.tactic = it->second;
    else if (n.tactic == 0) n.tactic = heuristicTactic(plan.graph, n);
  }
  plan.header.tuned = true;
  attachKernels(plan);
  return st;
}

GpuTiming GpuExecutor::time(const std::map<std::string, Tensor>& inputs, int warmup, int iterations) {
  Impl& m = *impl_;
  m.bind();
  m.checkInputs(inputs);
  Impl::Spec& s = m.specFor(inputs);
  const CudaDriverApi& cu = m.cu;
  m.uploadInputs(s, inputs);
  for (int i = 0; i < warmup; ++i) m.execute(s);
  checkCuda(cu.cuStreamSynchronize(m.stream), "warmup");
  GpuTiming t;
  std::vector<CUevent> ev(2 * static_cast<size_t>(iterations));
  for (auto& e : ev) checkCuda(cu.cuEventCreate(&e, 0), "cuEventCreate");
  try {
    for (int i = 0; i < iterations; ++i) {
      checkCuda(cu.cuEventRecord(ev[2 * i], m.stream), "cuEventRecord");
      m.execute(s);
      checkCuda(cu.cuEventRecord(ev[2 * i + 1], m.stream), "cuEventRecord");
    }
    checkCuda(cu.cuStreamSynchronize(m.stream), "timing");
    for (int i = 0; i < iterations; ++i) {
      float ms = 0;
      checkCuda(cu.cuEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]), "cuEventElapsedTime");
      t.gpuMs.push_back(ms);
    }
  } catch (...) {
    for (auto& e : ev) cu.cuEventDestroy(e);
    throw;
  }
  for (auto& e : ev) cu.cuEventDestroy(e);
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    m.uploadInputs(s, inputs);
    m.execute(s);
    m.downloadOutputs(s);
    t.hostMs.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return t;
}

std::vector<std::pair<std::string, double>> GpuExecutor::profileLayers(const std::map<std::string, Tensor>& inputs, int iterations) {
  Impl& m = *impl_;
  m.bind();
  m.checkInputs(inputs);
  Impl::Spec& s = m.specFor(inputs);
  const CudaDriverApi& cu = m.cu;
  m.uploadInputs(s, inputs);
  std::vector<double> total(s.steps.size(), 0.0);
  CUevent a = nullptr, b = nullptr;
  checkCuda(cu.cuEventCreate(&a, 0), "cuEventCreate");
  checkCuda(cu.cuEventCreate(&b, 0), "cuEventCreate");
  for (int it = 0; it < std::max(1, iterations); ++it) {
    for (size_t i = 0; i < s.steps.size(); ++i) {
      const Impl::Step& st = s.steps[i];
      checkCuda(cu.cuEventRecord(a, m.stream), "cuEventRecord");
      const auto t0 = std::chrono::steady_clock::now();
      if (st.kind == Impl::Step::kCpu) m.runCpuStep(s, m.plan.graph.nodes[st.node]);
      else for (const Launch& l : st.launches) l(m.stream);
      checkCuda(cu.cuEventRecord(b, m.stream), "cuEventRecord");
      checkCuda(cu.cuEventSynchronize(b), "cuEventSynchronize");
      float ms = 0;
      checkCuda(cu.cuEventElapsedTime(&ms, a, b), "cuEventElapsedTime");
      // CPU layers: wall time (the events only see the copies).
      total[i] += st.kind == Impl::Step::kCpu ? std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() : ms;
    }
  }
  cu.cuEventDestroy(a);
  cu.cuEventDestroy(b);
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 0; i < s.steps.size(); ++i) {
    const Node& n = m.plan.graph.nodes[s.steps[i].node];
    const size_t launches = s.steps[i].launches.size();
    out.emplace_back(n.opType + " '" + n.name + "' [" +
                         (s.steps[i].kind == Impl::Step::kCpu ? std::string("cpu")
                                                              : "gpu" + (launches == 1 ? std::string() : " x" + std::to_string(launches))) +
                         "]",
                     total[i] / std::max(1, iterations));
  }
  return out;
}

}  // namespace gpu
}  // namespace planforge
