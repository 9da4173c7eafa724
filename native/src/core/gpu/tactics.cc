#include "tactics.h"

#include <algorithm>
#include <map>
#include <set>

#include "cubin.h"
#include "kernel_abi.h"

namespace planforge {
namespace gpu {

namespace {

const std::set<std::string>& elementwiseOps() {
  static const std::set<std::string> s{"Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Clip", "LeakyRelu", "Gelu", "Erf",
                                       "Exp", "Sqrt", "Neg", "Abs", "Reciprocal", "Log", "RoundToFp16", "Add", "Sub", "Mul",
                                       "Div", "Pow", "Max", "Min", "PRelu", "BatchNormalization", "IsNaN", "Where"};
  return s;
}
const std::set<std::string>& aliasOps() {
  static const std::set<std::string> s{"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"};
  return s;
}

bool isConv(const Node& n) { return n.opType == "Conv" || n.opType == "FusedConv"; }
bool isGemm(const Node& n) {
  return n.opType == "Gemm" || n.opType == "FusedGemm" || n.opType == "MatMul" || n.opType == "FusedMatMul";
}
bool lowPrecision(const Node& n) { return n.precision == "fp16" || n.precision == "int8"; }

// Conv with one input channel per group (depthwise) — needs the weight shape.
bool isDepthwise(const Graph& g, const Node& n) {
  const int64_t groups = n.attrs.getInt("group", 1);
  if (groups <= 1 || n.inputs.size() < 2) return false;
  auto init = g.initializers.find(n.inputs[1]);
  if (init != g.initializers.end()) return init->second.shape.size() == 4 && init->second.shape[1] == 1;
  const ValueType* w = g.typeOf(n.inputs[1]);
  return w && w->hasShape && w->dims.size() == 4 && w->dims[1] == 1;
}

const std::set<std::string>& nhwcActivations() {
  static const std::set<std::string> s{"", "None", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Gelu", "GeluTanh", "SiLU",
                                       "Tanh", "LeakyRelu"};
  return s;
}

}  // namespace

bool nhwcConvEligible(const Graph& g, const Node& n) {
  const bool onnx = n.domain.empty() || n.domain == "ai.onnx" || n.domain == "planforge";
  if (!onnx || !isConv(n) || !lowPrecision(n) || n.attrs.getInt("group", 1) != 1 || n.inputs.size() < 2) return false;
  auto w = g.initializers.find(n.inputs[1]);
  if (w == g.initializers.end() || w->second.shape.size() != 4 || w->second.shape[0] % 8 != 0 || w->second.shape[0] <= 0) return false;
  if (n.opType == "FusedConv" && !nhwcActivations().count(n.attrs.getString("activation", ""))) return false;
  return n.attrs.getInts("strides", {1, 1}).size() == 2 && n.attrs.getInts("dilations", {1, 1}).size() == 2;
}

const std::vector<NhwcConvTile>& nhwcConvTiles() {
  static const std::vector<NhwcConvTile> t{
      {kTacticConvNhwc128x128, kTacticGemmNhwc128x128, "pf_conv_nhwc_128x128", "pf_conv_nhwc_128x128_c4", 128, 128, 128, 3, 225, 1.0},
      {kTacticConvNhwc256x128, kTacticGemmNhwc256x128, "pf_conv_nhwc_256x128", "pf_conv_nhwc_256x128_c4", 256, 128, 256, 3, 225, 1.0},
      {kTacticConvNhwc128x64, kTacticGemmNhwc128x64, "pf_conv_nhwc_128x64", "pf_conv_nhwc_128x64_c4", 128, 64, 128, 4, 126, 0.85},
      {kTacticConvNhwc64x64, kTacticGemmNhwc64x64, "pf_conv_nhwc_64x64", "pf_conv_nhwc_64x64_c4", 64, 64, 128, 4, 78, 0.6}};
  return t;
}

int nhwcBlocksPerSm(const NhwcConvTile& t, int sm) {
  // Shared memory per SM: sm_86 / sm_89 100 KiB, sm_80 / sm_87 164 KiB, sm_90 228 KiB (1 KiB of it reserved per block).
  const int sharedPerSm = (sm == 86 || sm == 89 ? 100 : sm == 80 || sm == 87 ? 164 : 228) * 1024;
  const int bySmem = sharedPerSm / (t.sharedBytes() + 1024);
  const int regsPerThread = (t.registers + 7) / 8 * 8;
  const int byRegs = 65536 / (regsPerThread * t.threads);
  const int byThreads = (sm == 86 || sm == 87 || sm == 89 ? 1536 : 2048) / t.threads;
  return std::max(1, std::min({bySmem, byRegs, byThreads}));
}

int nhwcSplits(const NhwcConvTile& t, long long M, long long Co, long long K, int multiprocessors, int* kTilesPerSplit) {
  const long long kt = (K + 31) / 32, tiles = ((M + t.bm - 1) / t.bm) * ((Co + t.bn - 1) / t.bn);
  long long splits = 1;
  if (tiles < multiprocessors && kt >= 8)
    splits = std::max<long long>(1, std::min<long long>({(2LL * multiprocessors + tiles - 1) / tiles, kt / 4, 16}));
  const long long per = (kt + splits - 1) / splits;
  *kTilesPerSplit = static_cast<int>(per);
  return static_cast<int>((kt + per - 1) / per);
}

int64_t nhwcHeuristicTile(long long M, long long Co, long long K, int sm, int multiprocessors) {
  int64_t best = kTacticConvNhwc128x128;
  double bestCost = 1e300;
  const int sms = std::max(1, multiprocessors);
  for (const auto& t : nhwcConvTiles()) {
    int per = 0;
    const int splits = nhwcSplits(t, M, Co, K, sms, &per);
    const long long blocks = ((M + t.bm - 1) / t.bm) * ((Co + t.bn - 1) / t.bn) * splits;
    const int occ = nhwcBlocksPerSm(t, sm);
    // Per wave, the busiest SM's blocks (full waves: occ of them; the last: what is left) share
    // its tensor cores; fewer than 8 resident warps leave them partly idle (latency-bound). A
    // block's work is its whole tile (padding included) plus a fixed start.
    const long long slots = static_cast<long long>(sms) * occ, full = blocks / slots, rest = blocks % slots;
    const double work = static_cast<double>(t.bm) * t.bn * (per * 32.0 + 64.0);
    auto wave = [&](long long resident) {
      const double speed = std::min(1.0, static_cast<double>(resident) * (t.threads / 32) / 8.0) * t.efficiency;
      return static_cast<double>(resident) * work / speed;
    };
    double cost = static_cast<double>(full) * wave(occ) + (rest ? wave((rest + sms - 1) / sms) : 0.0);
    // Split-K: the reduction reads the FP32 slices (a byte ~ 48 MACs of an SM) and is one more launch.
    if (splits > 1) cost += static_cast<double>(splits) * M * Co * 4.0 / sms * 48.0 + 1e6;
    if (cost < bestCost * 0.999) {
      bestCost = cost;
      best = t.tactic;
    }
  }
  return best;
}
const NhwcConvTile* nhwcConvTile(int64_t tactic) {
  for (const auto& t : nhwcConvTiles())
    if (t.tactic == tactic || t.gemmTactic == tactic) return &t;
  return nullptr;
}
bool isNhwcConvTactic(int64_t tactic) {
  if (tactic == kTacticConvNhwcCublasLt || nhwcWgmmaTile(tactic)) return true;
  const NhwcConvTile* t = nhwcConvTile(tactic);
  return t && t->tactic == tactic;
}

bool nhwcWgmmaConvEligible(const Graph& g, const Node& n) {
  return nhwcConvEligible(g, n) && g.initializers.at(n.inputs[1]).shape[1] % 64 == 0;
}
const std::vector<NhwcWgmmaTile>& nhwcWgmmaTiles() {
  static const std::vector<NhwcWgmmaTile> t{
      {kTacticConvNhwcWgmma128x128, "pf_conv_nhwc_wgmma_128x128", 128, 128, 256, 3, false, 2},
      {kTacticConvNhwcWgmma128x64, "pf_conv_nhwc_wgmma_128x64", 128, 64, 256, 4, false, 2},
      {kTacticConvNhwcWgmma128x128Overlap, "pf_conv_nhwc_wgmma_128x128_overlap", 128, 128, 256, 4, true, 1},
      {kTacticConvNhwcWgmma128x64Overlap, "pf_conv_nhwc_wgmma_128x64_overlap", 128, 64, 256, 4, true, 2}};
  return t;
}
const NhwcWgmmaTile* nhwcWgmmaTile(int64_t tactic) {
  for (const auto& t : nhwcWgmmaTiles())
    if (t.tactic == tactic) return &t;
  return nullptr;
}

bool nhwcCublasLtConvEligible(const Graph& g, const Node& n) {
  if (!nhwcConvEligible(g, n)) return false;
  const Shape& w = g.initializers.at(n.inputs[1]).shape;
  if (w[1] % 8 != 0 || w[2] != 1 || w[3] != 1) return false;
  const std::string act = n.opType == "FusedConv" ? n.attrs.getString("activation", "") : "";
  if (!(act.empty() || act == "None" || act == "Relu")) return false;
  for (int64_t v : n.attrs.getInts("strides", {1, 1}))
    if (v < 1) return false;
  for (int64_t v : n.attrs.getInts("pads", {0, 0, 0, 0}))
    if (v != 0) return false;
  const std::string autoPad = n.attrs.getString("auto_pad", "NOTSET");
  return autoPad == "NOTSET" || autoPad == "VALID" || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER";  // 1 x 1: SAME pads nothing
}
bool isNhwcGemmTactic(int64_t tactic) {
  const NhwcConvTile* t = nhwcConvTile(tactic);
  return t && t->gemmTactic == tactic;
}

bool nhwcGemmEligible(const Graph& g, const Node& n) {
  const bool onnx = n.domain.empty() || n.domain == "ai.onnx" || n.domain == "planforge";
  if (!onnx || !isGemm(n) || !lowPrecision(n) || n.inputs.size() < 2) return false;
  const bool gemm = n.opType == "Gemm" || n.opType == "FusedGemm";
  if (gemm && (n.attrs.getInt("transA", 0) != 0 || n.attrs.getFloat("alpha", 1.f) != 1.f || n.attrs.getFloat("beta", 1.f) != 1.f)) return false;
  auto w = g.initializers.find(n.inputs[1]);
  if (w == g.initializers.end() || w->second.shape.size() != 2) return false;
  const bool transB = gemm && n.attrs.getInt("transB", 0) != 0;
  const int64_t K = transB ? w->second.shape[1] : w->second.shape[0], N = transB ? w->second.shape[0] : w->second.shape[1];
  if (K <= 0 || N <= 0 || K % 8 || N % 8) return false;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {  // a bias of N values; a broadcast mask is not a bias
    auto b = g.initializers.find(n.inputs[2]);
    if (b == g.initializers.end() || b->second.numel() != N || b->second.shape.empty() || b->second.shape.back() != N) return false;
  }
  if ((n.opType == "FusedMatMul" || n.opType == "FusedGemm") && !nhwcActivations().count(n.attrs.getString("activation", ""))) return false;
  return true;
}

const char* tacticName(int64_t t) {
  switch (t) {
    case kTacticReference: return "cpu_reference";
    case kTacticElementwise: return "elementwise";
    case kTacticAlias: return "alias";
    case kTacticCopy: return "copy";
    case kTacticConvF32: return "conv_f32_implicit_gemm";
    case kTacticConvF16TensorCore: return "conv_f16_tensorcore";
    case kTacticConvDepthwise: return "conv_depthwise";
    case kTacticConvCublasLt: return "conv_cublaslt";
    case kTacticConvCublasLtF16: return "conv_cublaslt_f16";
    case kTacticConvNhwc128x128: return "conv_nhwc_f16_128x128";
    case kTacticConvNhwc256x128: return "conv_nhwc_f16_256x128";
    case kTacticConvNhwc128x64: return "conv_nhwc_f16_128x64";
    case kTacticConvNhwc64x64: return "conv_nhwc_f16_64x64";
    case kTacticConvNhwcCublasLt: return "conv_nhwc_cublaslt_f16";
    case kTacticGemmNhwc128x128: return "gemm_nhwc_f16_128x128";
    case kTacticGemmNhwc256x128: return "gemm_nhwc_f16_256x128";
    case kTacticGemmNhwc128x64: return "gemm_nhwc_f16_128x64";
    case kTacticGemmNhwc64x64: return "gemm_nhwc_f16_64x64";
    case kTacticGemmF32: return "gemm_f32";
    case kTacticGemmF16TensorCore: return "gemm_f16_tensorcore";
    case kTacticGemmCublasLt: return "gemm_cublaslt";
    case kTacticGemmCublasLtF16: return "gemm_cublaslt_f16";
    case kTacticConvVector: return "conv_1x1_vector";
    case kTacticConvNhwcWgmma128x128: return "conv_nhwc_wgmma_f16_128x128";
    case kTacticConvNhwcWgmma128x64: return "conv_nhwc_wgmma_f16_128x64";
    case kTacticConvNhwcWgmma128x128Overlap: return "conv_nhwc_wgmma_f16_128x128_overlap";
    case kTacticConvNhwcWgmma128x64Overlap: return "conv_nhwc_wgmma_f16_128x64_overlap";
    case kTacticPool: return "pool";
    case kTacticRowReduce: return "row_reduce";
  }
  return "unknown";
}

bool gpuHasKernelFor(const Node& n) { return !candidateTactics(Graph{}, n).empty(); }

std::vector<int64_t> candidateTactics(const Graph& g, const Node& n) {
  const bool onnx = n.domain.empty() || n.domain == "ai.onnx";
  const bool ours = n.domain == "planforge";
  if (!onnx && !ours) return {};
  if (isConv(n)) {
    if (isDepthwise(g, n)) return {kTacticConvDepthwise, kTacticConvF32};
    if (nhwcConvEligible(g, n))
      return {kTacticConvNhwc128x128, kTacticConvNhwc256x128, kTacticConvNhwc128x64, kTacticConvNhwc64x64, kTacticConvF16TensorCore,
              kTacticConvF32};
    if (lowPrecision(n)) return {kTacticConvF16TensorCore, kTacticConvF32};
    return {kTacticConvF32};
  }
  if (isGemm(n)) {
    if (nhwcGemmEligible(g, n))
      return {kTacticGemmNhwc128x128, kTacticGemmNhwc256x128, kTacticGemmNhwc128x64, kTacticGemmNhwc64x64, kTacticGemmF16TensorCore,
              kTacticGemmF32};
    if (lowPrecision(n)) return {kTacticGemmF16TensorCore, kTacticGemmF32};
    return {kTacticGemmF32};
  }
  if (elementwiseOps().count(n.opType)) return {kTacticElementwise};
  if (aliasOps().count(n.opType)) return {kTacticAlias};
  if (n.opType == "Transpose" || n.opType == "Concat" || n.opType == "Gather") return {kTacticCopy};
  if (n.opType == "MaxPool" || n.opType == "AveragePool") return {kTacticPool};
  if (n.opType == "GlobalAveragePool" || n.opType == "ReduceMean" || n.opType == "Softmax" || n.opType == "LogSoftmax" ||
      n.opType == "LayerNormalization")
    return {kTacticRowReduce};
  return {};
}

bool isCublasLtTactic(int64_t t) {
  return t == kTacticConvCublasLt || t == kTacticGemmCublasLt || t == kTacticConvCublasLtF16 || t == kTacticGemmCublasLtF16 ||
         t == kTacticConvNhwcCublasLt;
}
bool isCublasLtF16Tactic(int64_t t) {
  return t == kTacticConvCublasLtF16 || t == kTacticGemmCublasLtF16 || t == kTacticConvNhwcCublasLt;
}

int64_t cublasLtTacticFor(const Graph& g, const Node& n) {
  const bool onnx = n.domain.empty() || n.domain == "ai.onnx" || n.domain == "planforge";
  if (!onnx) return kTacticReference;
  if (isGemm(n)) return kTacticGemmCublasLt;
  if (isConv(n) && n.attrs.getInt("group", 1) == 1 && !isDepthwise(g, n)) return kTacticConvCublasLt;
  return kTacticReference;
}

int64_t cublasLtF16TacticFor(const Graph& g, const Node& n) {
  if (!lowPrecision(n)) return kTacticReference;
  const int64_t lt = cublasLtTacticFor(g, n);
  if (lt == kTacticGemmCublasLt) return kTacticGemmCublasLtF16;
  if (lt == kTacticConvCublasLt) return kTacticConvCublasLtF16;
  return kTacticReference;
}

std::vector<int64_t> cublasLtTacticsFor(const Graph& g, const Node& n) {
  std::vector<int64_t> c;
  const int64_t lt = cublasLtTacticFor(g, n);
  if (lt == kTacticReference) return c;
  c.push_back(lt);
  const int64_t f16 = cublasLtF16TacticFor(g, n);
  if (f16 != kTacticReference) c.push_back(f16);
  if (nhwcCublasLtConvEligible(g, n)) c.push_back(kTacticConvNhwcCublasLt);
  return c;
}

bool convVectorEligible(const Graph& g, const Node& n) {
  const bool onnx = n.domain.empty() || n.domain == "ai.onnx" || n.domain == "planforge";
  if (!onnx || !isConv(n) || n.attrs.getInt("group", 1) != 1 || n.inputs.size() < 2) return false;
  auto w = g.initializers.find(n.inputs[1]);
  if (w == g.initializers.end() || w->second.shape.size() != 4 || w->second.shape[2] != 1 || w->second.shape[3] != 1) return false;
  if (n.opType == "FusedConv" && !nhwcActivations().count(n.attrs.getString("activation", ""))) return false;
  for (int64_t v : n.attrs.getInts("strides", {1, 1}))
    if (v != 1) return false;
  for (int64_t v : n.attrs.getInts("pads", {0, 0, 0, 0}))
    if (v != 0) return false;
  return true;
}

std::vector<int64_t> tuningCandidates(const Graph& g, const Node& n, bool cublasLtPresent) {
  std::vector<int64_t> c = candidateTactics(g, n);
  if (!c.empty() && convVectorEligible(g, n)) c.push_back(kTacticConvVector);
  if (!c.empty() && nhwcWgmmaConvEligible(g, n))
    for (const auto& t : nhwcWgmmaTiles()) c.push_back(t.tactic);
  if (cublasLtPresent && !c.empty())
    for (int64_t lt : cublasLtTacticsFor(g, n)) c.push_back(lt);
  return c;
}

int64_t runtimeTactic(const Graph& g, const Node& n, int64_t planned, bool cublasLtPresent, bool* fellBack) {
  if (fellBack) *fellBack = false;
  const std::vector<int64_t> ours = candidateTactics(g, n);
  if (std::find(ours.begin(), ours.end(), planned) != ours.end()) return planned;
  // Our kernels of the layer's family stay usable whatever the layer's precision.
  if (isConv(n) && (planned == kTacticConvF32 || planned == kTacticConvF16TensorCore || planned == kTacticConvDepthwise)) return planned;
  if (planned == kTacticConvVector && convVectorEligible(g, n)) return planned;
  if (nhwcWgmmaTile(planned) && nhwcWgmmaConvEligible(g, n)) return planned;
  if (isGemm(n) && (planned == kTacticGemmF32 || planned == kTacticGemmF16TensorCore)) return planned;
  const std::vector<int64_t> lts = isCublasLtTactic(planned) ? cublasLtTacticsFor(g, n) : std::vector<int64_t>{};
  if (std::find(lts.begin(), lts.end(), planned) != lts.end()) {
    if (cublasLtPresent) return planned;
    if (fellBack) *fellBack = true;
  }
  return ours.empty() ? kTacticReference : ours.front();
}

int64_t heuristicTactic(const Graph& g, const Node& n) {
  const std::vector<int64_t> c = candidateTactics(g, n);
  return c.empty() ? kTacticReference : c.front();
}

void prepareGpuPlan(Plan& plan) {
  for (auto& n : plan.graph.nodes) n.tactic = heuristicTactic(plan.graph, n);
  plan.header.tuned = false;
  attachKernels(plan);
}

ConvLtEpilogue planConvLtEpilogue(bool hasBias, bool hasResidual, int act, bool round, int64_t Co, int64_t HW, bool enabled,
                                  size_t maxBiasBytes) {
  ConvLtEpilogue e;
  if (enabled && hasBias && !hasResidual && Co > 0 && HW > 0 && static_cast<uint64_t>(Co) * static_cast<uint64_t>(HW) * 4 <= maxBiasBytes)
    e.biasAsC = true;
  e.passBias = hasBias && !e.biasAsC;
  // cuBLASLt's ReLU / GELU act on alpha * AB + beta * C; with a bias left to the pass they cannot run first.
  if (enabled && !e.passBias && (act == kUnaryRelu || act == kUnaryGeluTanh)) e.ltActivation = act;
  e.passActivation = act != kUnaryCopy && e.ltActivation == 0;
  e.needsPass = e.passBias || e.passActivation || round;
  return e;
}

std::vector<std::pair<size_t, std::string>> deferrableConvRounds(const Graph& g) {
  std::map<std::string, int> readers;
  std::map<std::string, size_t> producer;
  std::map<std::string, std::vector<std::pair<size_t, size_t>>> uses;  // value -> (node, input index)
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k) {
      const std::string& in = g.nodes[i].inputs[k];
      if (in.empty()) continue;
      ++readers[in];
      uses[in].emplace_back(i, k);
    }
    for (const auto& o : g.nodes[i].outputs)
      if (!o.empty()) producer[o] = i;
  }
  const std::set<std::string> outputs(g.outputs.begin(), g.outputs.end());
  std::vector<std::pair<size_t, std::string>> r;
  for (const Node& rn : g.nodes) {
    if (rn.opType != "RoundToFp16" || rn.inputs.size() != 1 || rn.outputs.size() != 1 || rn.outputs[0].empty()) continue;
    const std::string& x = rn.inputs[0];
    const std::string& xr = rn.outputs[0];
    auto p = producer.find(x);
    // One reader of the rounded value: several would each round it (in place) when not on FP16 operands.
    if (p == producer.end() || readers[x] != 1 || readers[xr] != 1 || outputs.count(x) || outputs.count(xr)) continue;
    const Node& pn = g.nodes[p->second];
    if (!isConv(pn) || pn.outputs.empty() || pn.outputs[0] != x) continue;
    bool ok = pn.outputs.size() == 1 || std::all_of(pn.outputs.begin() + 1, pn.outputs.end(), [](const std::string& o) { return o.empty(); });
    auto u = uses.find(xr);
    if (u == uses.end() || u->second.empty()) ok = false;
    else
      for (const auto& use : u->second) {
        const Node& c = g.nodes[use.first];
        if (use.second != 0 || !isConv(c) || cublasLtF16TacticFor(g, c) != kTacticConvCublasLtF16) ok = false;
      }
    if (ok) r.emplace_back(p->second, xr);
  }
  return r;
}

}  // namespace gpu
}  // namespace planforge
