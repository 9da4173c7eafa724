// cuBLASLt as a tactic source. CPU side (CI, no GPU, no libcublasLt): absence is handled (the
// tactic is never a candidate or a heuristic choice), the fallback selection, tactic ids through
// plan and timing-cache serialization. GPU side (the device machine, when libcublasLt is found):
// GEMM / MatMul / convolution layers on cuBLASLt against the CPU reference, fp32 and fp16 plans,
// batched and with epilogues; the im2col chunking; the fallback when the library goes missing;
// autotuning with cuBLASLt among the candidates.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>

#include "core/executor.h"
#include "core/half.h"
#include "core/gpu/cubin.h"
#include "core/gpu/cublaslt.h"
#include "core/gpu/cuda_driver.h"
#include "core/gpu/device.h"
#include "core/gpu/gpu_executor.h"
#include "core/gpu/tactics.h"
#include "core/gpu/timing_cache.h"
#include "core/plan/plan.h"
#include "test_framework.h"
#include "test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

Node fused(const std::string& op, const std::string& name, std::vector<std::string> ins, std::vector<std::string> outs,
           const std::string& precision) {
  Node n = node(op, name, std::move(ins), std::move(outs));
  if (op.rfind("Fused", 0) == 0) n.domain = "planforge";
  n.precision = precision;
  return n;
}

// GEMM shapes: plain / transposed Gemm with alpha, beta and a full C, a fused residual + ReLU,
// MatMul batched over shared weights (one tall GEMM) with bias + erf-GELU (activation after) and
// bias + tanh-GELU (cuBLASLt epilogue), attention-like batched MatMul with a broadcast mask, and a
// MatMul whose left operand is broadcast over the batch (batch stride 0).
Plan gemmPlan(int sm, const std::string& pr) {
  Plan p = emptyPlan(sm, pr);
  Graph& g = p.graph;
  addInput(g, "a", {6, 40});
  addInput(g, "at", {40, 6});
  addInput(g, "x3", {2, 7, 24});
  addInput(g, "q", {2, 3, 5, 8});
  addInput(g, "k", {2, 3, 8, 5});
  addInput(g, "s", {5, 8});
  g.initializers["w1"] = uniformFloats({40, 33}, 101);
  g.initializers["b1"] = uniformFloats({33}, 102);
  g.initializers["w2"] = uniformFloats({17, 40}, 103);
  g.initializers["c2"] = uniformFloats({6, 17}, 104);
  g.initializers["w3"] = uniformFloats({24, 50}, 105);
  g.initializers["b3"] = uniformFloats({50}, 106);
  g.initializers["mask"] = uniformFloats({2, 1, 1, 5}, 107);
  Node g1 = fused("Gemm", "g1", {"a", "w1", "b1"}, {"y1"}, pr);
  g1.attrs.values["alpha"] = floatAttr(0.5f);
  g.nodes.push_back(g1);
  Node g2 = fused("Gemm", "g2", {"a", "w2", "c2"}, {"y2"}, pr);
  g2.attrs.values["transB"] = intAttr(1);
  g2.attrs.values["beta"] = floatAttr(0.7f);
  g.nodes.push_back(g2);
  Node g3 = fused("Gemm", "g3", {"at", "w1", "b1"}, {"y3"}, pr);
  g3.attrs.values["transA"] = intAttr(1);
  g.nodes.push_back(g3);
  Node g4 = fused("FusedGemm", "g4", {"a", "w1", "b1", "y1"}, {"y4"}, pr);
  g4.attrs.values["activation"] = stringAttr("Relu");
  g.nodes.push_back(g4);
  Node m1 = fused("FusedMatMul", "m1", {"x3", "w3", "b3"}, {"y5"}, pr);
  m1.attrs.values["activation"] = stringAttr("Gelu");
  g.nodes.push_back(m1);
  Node m2 = fused("FusedMatMul", "m2", {"x3", "w3", "b3"}, {"y6"}, pr);
  m2.attrs.values["activation"] = stringAttr("GeluTanh");
  g.nodes.push_back(m2);
  g.nodes.push_back(fused("FusedMatMul", "qk", {"q", "k", "mask"}, {"y7"}, pr));
  g.nodes.push_back(fused("MatMul", "bcast", {"s", "k"}, {"y8"}, pr));
  g.outputs = {"y1", "y2", "y3", "y4", "y5", "y6", "y7", "y8"};
  inferShapes(g);
  return p;
}
std::map<std::string, Tensor> gemmInputs() {
  return {{"a", uniformFloats({6, 40}, 1)}, {"at", uniformFloats({40, 6}, 2)}, {"x3", uniformFloats({2, 7, 24}, 3)},
          {"q", uniformFloats({2, 3, 5, 8}, 4)}, {"k", uniformFloats({2, 3, 8, 5}, 5)}, {"s", uniformFloats({5, 8}, 6)}};
}
constexpr int kGemmLayers = 8;

// Convolutions: 1x1 stride 1 (the direct GEMM) with bias + ReLU and with a residual, 3x3 pad 1
// with bias, 3x3 stride 2 + HardSwish, 7x7 stride 2 pad 3, 3x3 dilation 2, 1x1 stride 2 (im2col);
// a depthwise convolution stays on our kernel.
Plan convPlan(int sm, const std::string& pr) {
  Plan p = emptyPlan(sm, pr);
  Graph& g = p.graph;
  addInput(g, "x", {3, 16, 12, 12});
  g.initializers["w1"] = uniformFloats({32, 16, 1, 1}, 201);
  g.initializers["b1"] = uniformFloats({32}, 202);
  g.initializers["w2"] = uniformFloats({32, 32, 1, 1}, 203);
  g.initializers["b2"] = uniformFloats({32}, 204);
  g.initializers["w3"] = uniformFloats({24, 32, 3, 3}, 205);
  g.initializers["b3"] = uniformFloats({24}, 206);
  g.initializers["w4"] = uniformFloats({20, 24, 3, 3}, 207);
  g.initializers["b4"] = uniformFloats({20}, 208);
  g.initializers["w5"] = uniformFloats({8, 16, 7, 7}, 209);
  g.initializers["w6"] = uniformFloats({8, 16, 3, 3}, 210);
  g.initializers["w7"] = uniformFloats({8, 16, 1, 1}, 211);
  g.initializers["wd"] = uniformFloats({16, 1, 3, 3}, 212);
  Node c1 = fused("FusedConv", "c1", {"x", "w1", "b1"}, {"y1"}, pr);
  c1.attrs.values["activation"] = stringAttr("Relu");
  g.nodes.push_back(c1);
  Node c2 = fused("FusedConv", "c2", {"y1", "w2", "b2", "y1"}, {"y2"}, pr);
  c2.attrs.values["activation"] = stringAttr("Relu");
  g.nodes.push_back(c2);
  Node c3 = fused("Conv", "c3", {"y2", "w3", "b3"}, {"y3"}, pr);
  c3.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  g.nodes.push_back(c3);
  Node c4 = fused("FusedConv", "c4", {"y3", "w4", "b4"}, {"y4"}, pr);
  c4.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  c4.attrs.values["strides"] = intsAttr({2, 2});
  c4.attrs.values["activation"] = stringAttr("HardSwish");
  g.nodes.push_back(c4);
  Node c5 = fused("Conv", "c5", {"x", "w5"}, {"y5"}, pr);
  c5.attrs.values["pads"] = intsAttr({3, 3, 3, 3});
  c5.attrs.values["strides"] = intsAttr({2, 2});
  g.nodes.push_back(c5);
  Node c6 = fused("Conv", "c6", {"x", "w6"}, {"y6"}, pr);
  c6.attrs.values["pads"] = intsAttr({2, 2, 2, 2});
  c6.attrs.values["dilations"] = intsAttr({2, 2});
  g.nodes.push_back(c6);
  Node c7 = fused("Conv", "c7", {"x", "w7"}, {"y7"}, pr);
  c7.attrs.values["strides"] = intsAttr({2, 2});
  g.nodes.push_back(c7);
  Node dw = fused("Conv", "dw", {"x", "wd"}, {"y8"}, pr);
  dw.attrs.values["group"] = intAttr(16);
  dw.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  g.nodes.push_back(dw);
  g.outputs = {"y1", "y2", "y3", "y4", "y5", "y6", "y7", "y8"};
  inferShapes(g);
  return p;
}
constexpr int kConvLtLayers = 7;

bool gpuWithCublasLt(gpu::DeviceInfo* dev) {
  if (!gpu::cudaDriverAvailable()) return false;
  *dev = gpu::deviceInfo(0);
  if (!gpu::embeddedCubin(dev->sm)) return false;
  if (!gpu::cublasLtAvailable()) {
    std::cerr << "  (GPU present but no cuBLASLt: " << gpu::cublasLtUnavailableReason() << ")\n";
    return false;
  }
  return true;
}


// Runs the plan with the given options; every output within tol (max abs error / max |reference|).
gpu::GpuLayerStats expectMatchesCpu(Plan p, const std::map<std::string, Tensor>& in, double tol, gpu::GpuExecutorOptions o) {
  if (!p.header.tuned) gpu::prepareGpuPlan(p);  // tuned plans keep their tactics
  const auto want = runGraph(p.graph, in);
  gpu::GpuExecutor ex(p, o);
  const auto got = ex.run(in);
  const gpu::GpuLayerStats st = ex.stats(in);
  CHECK_EQ(st.cpuLayers, 0);
  for (const auto& kv : want) {
    const Tensor& g = got.at(kv.first);
    CHECK(g.shape == kv.second.shape);
    const double e = maxRelErr(g, kv.second);
    if (!(e <= tol)) PF_FAIL(p.header.precision << " output " << kv.first << " relative error " << e << " > " << tol);
  }
  const auto again = ex.run(in);  // replays the CUDA graph (cuBLASLt calls captured)
  for (const auto& kv : got) CHECK(again.at(kv.first).bytes == kv.second.bytes);
  return st;
}

double tolFor(const std::string& precision) { return precision == "fp32" ? 1e-4 : 2e-2; }

}  // namespace

// ------------------------------------------------------------------ CPU side

TEST(gpu_cublaslt_tactics_are_never_heuristic_and_only_candidates_when_present) {
  for (const char* pr : {"fp32", "fp16"}) {
    for (Plan p : {gemmPlan(90, pr), convPlan(90, pr)}) {
      Plan a = p, b = p;
      gpu::setCublasLtDisabledForTesting(true);
      for (auto& n : a.graph.nodes) n.tactic = gpu::heuristicTactic(a.graph, n);
      gpu::setCublasLtDisabledForTesting(false);
      for (auto& n : b.graph.nodes) n.tactic = gpu::heuristicTactic(b.graph, n);
      for (size_t i = 0; i < a.graph.nodes.size(); ++i) {
        const Node& n = a.graph.nodes[i];
        CHECK_EQ(n.tactic, b.graph.nodes[i].tactic);  // the heuristic does not look at the machine
        CHECK(!gpu::isCublasLtTactic(n.tactic));
        const auto ours = gpu::candidateTactics(a.graph, n);
        for (int64_t t : ours) CHECK(!gpu::isCublasLtTactic(t));
        // Absent: not a candidate (1 x 1 stride-1 convolutions add the vector kernel, ours too).
        std::vector<int64_t> tuned = ours;
        if (gpu::convVectorEligible(a.graph, n)) tuned.push_back(gpu::kTacticConvVector);
        if (n.opType.find("Conv") != std::string::npos) CHECK_EQ(gpu::convVectorEligible(a.graph, n), n.name == "c1" || n.name == "c2");
        CHECK(gpu::tuningCandidates(a.graph, n, false) == tuned);
        const auto withLt = gpu::tuningCandidates(a.graph, n, true);
        if (n.name == "dw") {
          CHECK(withLt == ours);  // depthwise: no cuBLASLt tactic
        } else {
          // FP32 layers: the FP32-operand cuBLASLt tactic only (FP32 plans stay exact); FP16 layers
          // also the FP16-operand one, and 1 x 1 stride-1 FP16 convolutions the NHWC one.
          const bool nhwcLt = gpu::nhwcCublasLtConvEligible(a.graph, n);
          CHECK_EQ(nhwcLt, std::string(pr) == "fp16" && (n.name == "c1" || n.name == "c2" || n.name == "c7"));
          const size_t lts = std::string(pr) == "fp16" ? (nhwcLt ? 3 : 2) : 1;
          CHECK_EQ(withLt.size(), tuned.size() + lts);
          CHECK(gpu::isCublasLtTactic(withLt.back()));
          CHECK_EQ(gpu::isCublasLtF16Tactic(withLt.back()), lts >= 2);
          CHECK_EQ(withLt.back() == gpu::kTacticConvNhwcCublasLt, nhwcLt);
          CHECK_EQ(withLt.front(), ours.front());
          for (size_t k = tuned.size(); k < withLt.size(); ++k) CHECK(gpu::isCublasLtTactic(withLt[k]));
        }
      }
    }
  }
}

TEST(gpu_cublaslt_tactic_applies_to_gemms_and_one_group_convolutions) {
  Plan p = convPlan(90, "fp16");
  for (const auto& n : p.graph.nodes)
    CHECK_EQ(gpu::cublasLtTacticFor(p.graph, n), n.name == "dw" ? int64_t(gpu::kTacticReference) : int64_t(gpu::kTacticConvCublasLt));
  Plan q = gemmPlan(90, "fp32");
  for (const auto& n : q.graph.nodes) CHECK_EQ(gpu::cublasLtTacticFor(q.graph, n), int64_t(gpu::kTacticGemmCublasLt));
  Node grouped = node("Conv", "grouped", {"x", "w"}, {"y"});
  grouped.attrs.values["group"] = intAttr(2);
  CHECK_EQ(gpu::cublasLtTacticFor(Graph{}, grouped), int64_t(gpu::kTacticReference));
  CHECK_EQ(gpu::cublasLtTacticFor(Graph{}, node("Relu", "r", {"x"}, {"y"})), int64_t(gpu::kTacticReference));
  Node foreign = node("MatMul", "m", {"a", "b"}, {"y"});
  foreign.domain = "com.example";
  CHECK_EQ(gpu::cublasLtTacticFor(Graph{}, foreign), int64_t(gpu::kTacticReference));
  CHECK_EQ(std::string(gpu::tacticName(gpu::kTacticGemmCublasLt)), std::string("gemm_cublaslt"));
  CHECK_EQ(std::string(gpu::tacticName(gpu::kTacticConvCublasLt)), std::string("conv_cublaslt"));
}

TEST(gpu_cublaslt_f16_operand_tactics_exist_only_for_fp16_layers) {
  CHECK_EQ(int64_t(gpu::kTacticConvCublasLtF16), int64_t(14));  // stored in plans and timing caches: never renumber
  CHECK_EQ(int64_t(gpu::kTacticGemmCublasLtF16), int64_t(23));
  CHECK_EQ(std::string(gpu::tacticName(gpu::kTacticGemmCublasLtF16)), std::string("gemm_cublaslt_f16"));
  CHECK_EQ(std::string(gpu::tacticName(gpu::kTacticConvCublasLtF16)), std::string("conv_cublaslt_f16"));
  CHECK(gpu::isCublasLtTactic(gpu::kTacticGemmCublasLtF16) && gpu::isCublasLtTactic(gpu::kTacticConvCublasLtF16));
  CHECK(gpu::isCublasLtF16Tactic(gpu::kTacticGemmCublasLtF16) && !gpu::isCublasLtF16Tactic(gpu::kTacticGemmCublasLt));
  Plan c16 = convPlan(90, "fp16"), c32 = convPlan(90, "fp32");
  for (size_t i = 0; i < c16.graph.nodes.size(); ++i) {
    const Node& n16 = c16.graph.nodes[i];
    const Node& n32 = c32.graph.nodes[i];
    const bool dw = n16.name == "dw";
    CHECK_EQ(gpu::cublasLtF16TacticFor(c16.graph, n16), dw ? int64_t(gpu::kTacticReference) : int64_t(gpu::kTacticConvCublasLtF16));
    CHECK_EQ(gpu::cublasLtF16TacticFor(c32.graph, n32), int64_t(gpu::kTacticReference));
    CHECK(gpu::cublasLtTacticsFor(c32.graph, n32) == (dw ? std::vector<int64_t>{} : std::vector<int64_t>{gpu::kTacticConvCublasLt}));
    std::vector<int64_t> want16{gpu::kTacticConvCublasLt, gpu::kTacticConvCublasLtF16};
    if (n16.name == "c1" || n16.name == "c2" || n16.name == "c7") want16.push_back(gpu::kTacticConvNhwcCublasLt);  // 1 x 1, no padding
    CHECK(gpu::cublasLtTacticsFor(c16.graph, n16) == (dw ? std::vector<int64_t>{} : want16));
  }
  Plan g16 = gemmPlan(90, "fp16"), g32 = gemmPlan(90, "fp32");
  for (size_t i = 0; i < g16.graph.nodes.size(); ++i) {
    CHECK_EQ(gpu::cublasLtF16TacticFor(g16.graph, g16.graph.nodes[i]), int64_t(gpu::kTacticGemmCublasLtF16));
    CHECK_EQ(gpu::cublasLtF16TacticFor(g32.graph, g32.graph.nodes[i]), int64_t(gpu::kTacticReference));
  }
  // INT8 layers compute like FP16 ones here.
  Node q = g16.graph.nodes[0];
  q.precision = "int8";
  CHECK_EQ(gpu::cublasLtF16TacticFor(g16.graph, q), int64_t(gpu::kTacticGemmCublasLtF16));
  // The heuristic stays deterministic and never picks a cuBLASLt tactic, also for these layers.
  // (prepareGpuPlan attaches the SM's cubin: not in a build without nvcc, e.g. the ASan one.)
  if (gpu::embeddedCubins().empty()) return;
  for (Plan p : {c16, g16}) {
    gpu::prepareGpuPlan(p);
    for (const auto& n : p.graph.nodes) CHECK(!gpu::isCublasLtTactic(n.tactic));
  }
}

TEST(gpu_cublaslt_f16_tactic_runtime_selection_and_fallback) {
  Plan p = convPlan(90, "fp16");
  const Graph& g = p.graph;
  const Node& c1 = g.nodes[0];
  bool fell = true;
  CHECK_EQ(gpu::runtimeTactic(g, c1, gpu::kTacticConvCublasLtF16, true, &fell), int64_t(gpu::kTacticConvCublasLtF16));
  CHECK(!fell);
  CHECK_EQ(gpu::runtimeTactic(g, c1, gpu::kTacticConvCublasLtF16, false, &fell), gpu::heuristicTactic(g, c1));
  CHECK(fell);
  // The GEMM variant on a convolution, or FP16 operands on an FP32 layer: not this layer's, the heuristic, silently.
  CHECK_EQ(gpu::runtimeTactic(g, c1, gpu::kTacticGemmCublasLtF16, true, &fell), gpu::heuristicTactic(g, c1));
  CHECK(!fell);
  Plan q = gemmPlan(90, "fp32");
  const Node& g1 = q.graph.nodes[0];
  CHECK_EQ(gpu::runtimeTactic(q.graph, g1, gpu::kTacticGemmCublasLtF16, true, &fell), int64_t(gpu::kTacticGemmF32));
  CHECK(!fell);
  Plan r = gemmPlan(90, "fp16");
  CHECK_EQ(gpu::runtimeTactic(r.graph, r.graph.nodes[0], gpu::kTacticGemmCublasLtF16, true, &fell), int64_t(gpu::kTacticGemmCublasLtF16));
  CHECK_EQ(gpu::runtimeTactic(r.graph, r.graph.nodes[0], gpu::kTacticGemmCublasLtF16, false, &fell),
           int64_t(gpu::kTacticGemmF16TensorCore));
  CHECK(fell);
}

TEST(gpu_cublaslt_runtime_tactic_falls_back_when_the_library_is_missing) {
  Plan p = convPlan(90, "fp16");
  const Graph& g = p.graph;
  const Node& c1 = g.nodes[0];
  bool fell = true;
  CHECK_EQ(gpu::runtimeTactic(g, c1, gpu::kTacticConvCublasLt, true, &fell), int64_t(gpu::kTacticConvCublasLt));
  CHECK(!fell);
  CHECK_EQ(gpu::runtimeTactic(g, c1, gpu::kTacticConvCublasLt, false, &fell), gpu::heuristicTactic(g, c1));
  CHECK(fell);
  // Our kernels are kept as planned; unknown / mismatched tactics get the heuristic, silently.
  CHECK_EQ(gpu::runtimeTactic(g, c1, gpu::kTacticConvF32, false, &fell), int64_t(gpu::kTacticConvF32));
  CHECK(!fell);
  CHECK_EQ(gpu::runtimeTactic(g, c1, gpu::kTacticGemmCublasLt, true, &fell), gpu::heuristicTactic(g, c1));
  CHECK(!fell);
  CHECK_EQ(gpu::runtimeTactic(g, c1, 0, true, &fell), gpu::heuristicTactic(g, c1));
  CHECK_EQ(gpu::runtimeTactic(g, c1, 999, true, &fell), gpu::heuristicTactic(g, c1));
  const Node& dw = g.nodes.back();
  CHECK_EQ(gpu::runtimeTactic(g, dw, gpu::kTacticConvCublasLt, true, &fell), int64_t(gpu::kTacticConvDepthwise));
  Plan q = gemmPlan(90, "fp32");
  const Node& g1 = q.graph.nodes[0];
  CHECK_EQ(gpu::runtimeTactic(q.graph, g1, gpu::kTacticGemmCublasLt, false, &fell), int64_t(gpu::kTacticGemmF32));
  CHECK(fell);
  CHECK_EQ(gpu::runtimeTactic(q.graph, g1, gpu::kTacticGemmF16TensorCore, false, &fell), int64_t(gpu::kTacticGemmF16TensorCore));
}

TEST(gpu_cublaslt_tactics_survive_plan_and_timing_cache_serialization) {
  if (gpu::embeddedCubins().empty()) return;  // prepareGpuPlan needs the SM's cubin (no nvcc: e.g. the ASan build)
  Plan p = convPlan(90, "fp16");
  gpu::prepareGpuPlan(p);
  for (auto& n : p.graph.nodes)
    if (gpu::cublasLtTacticFor(p.graph, n) != gpu::kTacticReference) n.tactic = gpu::cublasLtTacticFor(p.graph, n);
  p.header.tuned = true;
  const std::vector<uint8_t> bytes = serializePlan(p);
  const Plan q = parsePlan(bytes.data(), bytes.size());
  CHECK(q.header.tuned);
  for (size_t i = 0; i < p.graph.nodes.size(); ++i) CHECK_EQ(q.graph.nodes[i].tactic, p.graph.nodes[i].tactic);
  CHECK_EQ(q.graph.nodes[0].tactic, int64_t(gpu::kTacticConvCublasLt));
  CHECK(serializePlan(q) == bytes);

  gpu::TimingCache cache;
  const gpu::TimingKey key{"1.2.3", 90, "Gemm|planforge|fp16|float32[64x768];float32[768x768]|"};
  cache.record(key, gpu::TimingEntry{gpu::kTacticGemmCublasLt, 0.0125});
  const gpu::TimingKey key16{"1.2.3", 90, "Conv|planforge|fp16|float32[32x64x56x56];float32[64x64x3x3]|"};
  cache.record(key16, gpu::TimingEntry{gpu::kTacticConvCublasLtF16, 0.5});
  const gpu::TimingCache back = gpu::TimingCache::parse(cache.serialize());
  CHECK(back.find(key) != nullptr);
  CHECK_EQ(back.find(key)->tactic, int64_t(gpu::kTacticGemmCublasLt));
  CHECK(back.find(key16) != nullptr);
  CHECK_EQ(back.find(key16)->tactic, int64_t(gpu::kTacticConvCublasLtF16));

  // FP16-operand tactics through the plan file too.
  Plan f = convPlan(90, "fp16");
  gpu::prepareGpuPlan(f);
  for (auto& n : f.graph.nodes)
    if (gpu::cublasLtF16TacticFor(f.graph, n) != gpu::kTacticReference) n.tactic = gpu::cublasLtF16TacticFor(f.graph, n);
  f.header.tuned = true;
  const std::vector<uint8_t> fb = serializePlan(f);
  const Plan fq = parsePlan(fb.data(), fb.size());
  CHECK_EQ(fq.graph.nodes[0].tactic, int64_t(gpu::kTacticConvCublasLtF16));
  for (size_t i = 0; i < f.graph.nodes.size(); ++i) CHECK_EQ(fq.graph.nodes[i].tactic, f.graph.nodes[i].tactic);
}

TEST(gpu_cublaslt_absence_is_reported_not_thrown) {
  std::string why;
  CHECK(gpu::loadCublasLt("libcublasLt-definitely-missing.so.99", &why) == nullptr);
  CHECK(why.find("libcublasLt-definitely-missing.so.99") != std::string::npos);
  const auto names = gpu::cublasLtLibraryCandidates();
  CHECK(!names.empty());
  CHECK(std::find(names.begin(), names.end(), std::string("libcublasLt.so.13")) != names.end());
  gpu::setCublasLtDisabledForTesting(true);
  CHECK(!gpu::cublasLtAvailable());
  CHECK(gpu::cublasLt() == nullptr);
  CHECK(!gpu::cublasLtUnavailableReason().empty());
  gpu::setCublasLtDisabledForTesting(false);
  if (!gpu::cublasLtAvailable()) CHECK(!gpu::cublasLtUnavailableReason().empty());  // CI: a reason, no exception
  else CHECK(gpu::cublasLt()->version >= 120000);
}

// ------------------------------------------------------------------ GPU side (device machine)

TEST(gpu_cublaslt_gemms_match_the_cpu_reference) {
  gpu::DeviceInfo dev;
  if (!gpuWithCublasLt(&dev)) return;
  gpu::GpuExecutorOptions o;
  o.preferCublasLt = true;
  for (const char* pr : {"fp32", "fp16"}) {
    const gpu::GpuLayerStats st = expectMatchesCpu(gemmPlan(dev.sm, pr), gemmInputs(), tolFor(pr), o);
    CHECK_EQ(st.cublasLtLayers, kGemmLayers);
    CHECK_EQ(st.cublasLtFallbacks, 0);
    CHECK(st.cudaGraph);
  }
}

TEST(gpu_cublaslt_convolutions_match_the_cpu_reference) {
  gpu::DeviceInfo dev;
  if (!gpuWithCublasLt(&dev)) return;
  gpu::GpuExecutorOptions o;
  o.preferCublasLt = true;
  const std::map<std::string, Tensor> in{{"x", uniformFloats({3, 16, 12, 12}, 301)}};
  for (const char* pr : {"fp32", "fp16"}) {
    const gpu::GpuLayerStats st = expectMatchesCpu(convPlan(dev.sm, pr), in, tolFor(pr), o);
    CHECK_EQ(st.cublasLtLayers, kConvLtLayers);
    CHECK(st.cudaGraph);
  }
  // im2col in chunks: room for two images of the largest layer, so 3 images = 2 + 1.
  setenv("PLANFORGE_GPU_IM2COL_BYTES", std::to_string(2 * 32 * 9 * 144 * 4).c_str(), 1);
  const gpu::GpuLayerStats st = expectMatchesCpu(convPlan(dev.sm, "fp32"), in, tolFor("fp32"), o);
  unsetenv("PLANFORGE_GPU_IM2COL_BYTES");
  CHECK_EQ(st.cublasLtLayers, kConvLtLayers);
}

// FP16 operands (FP16 weights, FP16 im2col / cast activations, FP32 accumulation) against the CPU
// reference of the same FP16 plan, in CUDA graphs: the GEMM shapes above, the convolutions (also
// with im2col / cast in chunks), and a ResNet-like block at a size where cuBLASLt's fast paths apply.
TEST(gpu_cublaslt_f16_operands_match_the_cpu_reference) {
  gpu::DeviceInfo dev;
  if (!gpuWithCublasLt(&dev)) return;
  gpu::GpuExecutorOptions o;
  o.preferCublasLt = true;
  o.preferCublasLtF16 = true;
  gpu::GpuLayerStats st = expectMatchesCpu(gemmPlan(dev.sm, "fp16"), gemmInputs(), 2e-2, o);
  CHECK_EQ(st.cublasLtLayers, kGemmLayers);
  CHECK_EQ(st.cublasLtF16Layers, kGemmLayers);
  CHECK(st.cublasLtComputeTypes.find("68h:") != std::string::npos);
  CHECK(st.cudaGraph);
  const std::map<std::string, Tensor> in{{"x", uniformFloats({3, 16, 12, 12}, 311)}};
  st = expectMatchesCpu(convPlan(dev.sm, "fp16"), in, 2e-2, o);
  CHECK_EQ(st.cublasLtLayers, kConvLtLayers);
  CHECK_EQ(st.cublasLtF16Layers, kConvLtLayers);
  CHECK(st.cudaGraph);
  // Chunks: room for two images of the largest FP16 columns (c3: 288 x 144 halves), so 3 = 2 + 1.
  setenv("PLANFORGE_GPU_IM2COL_BYTES", std::to_string(2 * 32 * 9 * 144 * 2).c_str(), 1);
  try {
    st = expectMatchesCpu(convPlan(dev.sm, "fp16"), in, 2e-2, o);
  } catch (...) {
    unsetenv("PLANFORGE_GPU_IM2COL_BYTES");
    throw;
  }
  unsetenv("PLANFORGE_GPU_IM2COL_BYTES");
  CHECK_EQ(st.cublasLtF16Layers, kConvLtLayers);
  // FP32 plans never take FP16 operands, even when asked.
  st = expectMatchesCpu(convPlan(dev.sm, "fp32"), in, 1e-4, o);
  CHECK_EQ(st.cublasLtLayers, kConvLtLayers);
  CHECK_EQ(st.cublasLtF16Layers, 0);
  CHECK(st.cublasLtComputeTypes.find('h') == std::string::npos);

  // ResNet-like: 1x1 (cast) -> 3x3 (FP16 im2col) -> 1x1 + residual + ReLU, batch 4; a BERT-like
  // FFN (bias + GELU epilogue) and a batched attention product with both operands activations.
  Plan r = emptyPlan(dev.sm, "fp16");
  Graph& g = r.graph;
  addInput(g, "x", {4, 64, 28, 28});
  addInput(g, "h", {2, 64, 256});
  addInput(g, "q", {2, 4, 64, 32});
  addInput(g, "k", {2, 4, 32, 64});
  g.initializers["wa"] = uniformFloats({32, 64, 1, 1}, 321);
  g.initializers["ba"] = uniformFloats({32}, 322);
  g.initializers["wb"] = uniformFloats({32, 32, 3, 3}, 323);
  g.initializers["bb"] = uniformFloats({32}, 324);
  g.initializers["wc"] = uniformFloats({64, 32, 1, 1}, 325);
  g.initializers["bc"] = uniformFloats({64}, 326);
  g.initializers["wf"] = uniformFloats({256, 1024}, 327);
  g.initializers["bf"] = uniformFloats({1024}, 328);
  Node a = fused("FusedConv", "a", {"x", "wa", "ba"}, {"ya"}, "fp16");
  a.attrs.values["activation"] = stringAttr("Relu");
  g.nodes.push_back(a);
  Node b = fused("FusedConv", "b", {"ya", "wb", "bb"}, {"yb"}, "fp16");
  b.attrs.values["activation"] = stringAttr("Relu");
  b.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  g.nodes.push_back(b);
  Node c = fused("FusedConv", "c", {"yb", "wc", "bc", "x"}, {"yc"}, "fp16");
  c.attrs.values["activation"] = stringAttr("Relu");
  g.nodes.push_back(c);
  Node f = fused("FusedMatMul", "ffn", {"h", "wf", "bf"}, {"yf"}, "fp16");
  f.attrs.values["activation"] = stringAttr("GeluTanh");
  g.nodes.push_back(f);
  g.nodes.push_back(fused("MatMul", "qk", {"q", "k"}, {"ys"}, "fp16"));
  g.outputs = {"yc", "yf", "ys"};
  inferShapes(g);
  const std::map<std::string, Tensor> rin{{"x", uniformFloats({4, 64, 28, 28}, 331)}, {"h", uniformFloats({2, 64, 256}, 332)},
                                          {"q", uniformFloats({2, 4, 64, 32}, 333)}, {"k", uniformFloats({2, 4, 32, 64}, 334)}};
  st = expectMatchesCpu(r, rin, 2e-2, o);
  CHECK_EQ(st.cublasLtF16Layers, 5);
  // The same through tactics stored in a tuned plan (no preferCublasLt).
  gpu::prepareGpuPlan(r);
  for (auto& n : r.graph.nodes) n.tactic = gpu::cublasLtF16TacticFor(r.graph, n);
  r.header.tuned = true;
  st = expectMatchesCpu(r, rin, 2e-2, {});
  CHECK_EQ(st.cublasLtF16Layers, 5);
  // Autotuned with FP16 operands among the candidates: whatever wins, still right.
  gpu::GpuExecutorOptions at;
  at.autotune = true;
  r.header.tuned = false;
  st = expectMatchesCpu(r, rin, 2e-2, at);
  CHECK_EQ(st.tunedLayers, 5);
  std::cerr << "  (ResNet-like/FFN/attention fp16 autotuned: " << st.cublasLtLayers << " cuBLASLt layers, " << st.cublasLtF16Layers
            << " with FP16 operands)\n";
}

TEST(gpu_cublaslt_missing_at_run_time_falls_back_with_a_warning) {
  gpu::DeviceInfo dev;
  if (!gpuWithCublasLt(&dev)) return;
  for (Plan p : {convPlan(dev.sm, "fp16"), gemmPlan(dev.sm, "fp32"), gemmPlan(dev.sm, "fp16")}) {
    gpu::prepareGpuPlan(p);
    int lt = 0;
    for (auto& n : p.graph.nodes)
      if (gpu::cublasLtTacticFor(p.graph, n) != gpu::kTacticReference) {
        // FP16 plans: the FP16-operand tactic on every other layer.
        const int64_t f16 = gpu::cublasLtF16TacticFor(p.graph, n);
        n.tactic = (f16 != gpu::kTacticReference && lt % 2 == 0) ? f16 : gpu::cublasLtTacticFor(p.graph, n);
        ++lt;
      }
    p.header.tuned = true;
    const std::map<std::string, Tensor> in = p.graph.inputs.size() == 1 ? std::map<std::string, Tensor>{{"x", uniformFloats({3, 16, 12, 12}, 401)}}
                                                                         : gemmInputs();
    gpu::GpuExecutorOptions o;
    gpu::setCublasLtDisabledForTesting(true);
    gpu::GpuLayerStats st;
    try {
      st = expectMatchesCpu(p, in, tolFor(p.header.precision), o);
    } catch (...) {
      gpu::setCublasLtDisabledForTesting(false);
      throw;
    }
    gpu::setCublasLtDisabledForTesting(false);
    CHECK_EQ(st.cublasLtLayers, 0);
    CHECK_EQ(st.cublasLtFallbacks, lt);
    // With the library back, the same plan runs those layers on cuBLASLt.
    const gpu::GpuLayerStats st2 = expectMatchesCpu(p, in, tolFor(p.header.precision), o);
    CHECK_EQ(st2.cublasLtLayers, lt);
    CHECK_EQ(st2.cublasLtFallbacks, 0);
  }
}

TEST(gpu_cublaslt_is_timed_by_the_autotuner_and_cached) {
  gpu::DeviceInfo dev;
  if (!gpuWithCublasLt(&dev)) return;
  // Big enough that cuBLASLt should win somewhere; the test only needs the choice to be a candidate.
  Plan p = emptyPlan(dev.sm, "fp16");
  Graph& g = p.graph;
  addInput(g, "x", {256, 768});
  g.initializers["w"] = uniformFloats({768, 3072}, 501);
  g.initializers["b"] = uniformFloats({3072}, 502);
  Node m = fused("FusedMatMul", "ffn", {"x", "w", "b"}, {"y"}, "fp16");
  m.attrs.values["activation"] = stringAttr("Relu");
  g.nodes.push_back(m);
  g.outputs = {"y"};
  inferShapes(g);
  const std::map<std::string, Tensor> in{{"x", uniformFloats({256, 768}, 503)}};
  gpu::TimingCache cache;
  Plan tuned = p;
  const gpu::GpuLayerStats st = gpu::tunePlan(tuned, in, 0, &cache);
  CHECK_EQ(st.tunedLayers, 1);
  const auto cands = gpu::tuningCandidates(tuned.graph, tuned.graph.nodes[0], true);
  CHECK_EQ(cands.size(), size_t(8));  // 4 NHWC tiles, f16 wmma, f32, cuBLASLt FP32 operands, cuBLASLt FP16 operands
  CHECK(std::find(cands.begin(), cands.end(), tuned.graph.nodes[0].tactic) != cands.end());
  std::cerr << "  (ffn 256x768x3072 fp16 tuned to " << gpu::tacticName(tuned.graph.nodes[0].tactic) << ")\n";
  CHECK_EQ(cache.size(), size_t(1));
  Plan again = p;
  const gpu::GpuLayerStats st2 = gpu::tunePlan(again, in, 0, &cache);
  CHECK_EQ(st2.timingCacheHits, 1);
  CHECK_EQ(again.graph.nodes[0].tactic, tuned.graph.nodes[0].tactic);
  const std::vector<uint8_t> bytes = serializePlan(tuned);
  expectMatchesCpu(parsePlan(bytes.data(), bytes.size()), in, 2e-2, {});
}

// FP16 plans put a RoundToFp16 after every FP16 layer. When it is the only reader of a convolution
// or GEMM output, the layer rounds its own output (in the cuBLASLt epilogue pass, or one in-place
// pass after our kernels) and the RoundToFp16 becomes a view; with two readers it stays a layer.
TEST(gpu_fp16_rounding_is_folded_into_convolutions_and_gemms) {
  gpu::DeviceInfo dev;
  if (!gpu::cudaDriverAvailable()) return;
  dev = gpu::deviceInfo(0);
  if (!gpu::embeddedCubin(dev.sm)) return;
  Plan p = emptyPlan(dev.sm, "fp16");
  Graph& g = p.graph;
  addInput(g, "x", {2, 8, 6, 6});
  addInput(g, "a", {5, 24});
  g.initializers["w1"] = uniformFloats({16, 8, 3, 3}, 601);
  g.initializers["b1"] = uniformFloats({16}, 602);
  g.initializers["w2"] = uniformFloats({24, 7}, 603);
  g.initializers["b2"] = uniformFloats({7}, 604);
  auto round = [](const std::string& name, const std::string& in, const std::string& out) {
    Node r = node("RoundToFp16", name, {in}, {out});
    r.domain = "planforge";
    return r;
  };
  Node c1 = fused("FusedConv", "c1", {"x", "w1", "b1"}, {"c1acc"}, "fp16");
  c1.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  c1.attrs.values["activation"] = stringAttr("Relu");
  g.nodes.push_back(c1);
  g.nodes.push_back(round("r1", "c1acc", "c1o"));
  Node m1 = fused("FusedMatMul", "m1", {"a", "w2", "b2"}, {"m1acc"}, "fp16");
  m1.attrs.values["activation"] = stringAttr("Gelu");
  g.nodes.push_back(m1);
  g.nodes.push_back(round("r2", "m1acc", "m1o"));
  g.nodes.push_back(fused("MatMul", "m2", {"a", "w2"}, {"m2acc"}, "fp16"));
  g.nodes.push_back(round("r3", "m2acc", "m2o"));
  g.nodes.push_back(node("Relu", "relu", {"m2acc"}, {"m2r"}));  // second reader: r3 stays a layer
  g.outputs = {"c1o", "m1o", "m2o", "m2r"};
  inferShapes(g);
  const std::map<std::string, Tensor> in{{"x", uniformFloats({2, 8, 6, 6}, 605)}, {"a", uniformFloats({5, 24}, 606)}};
  for (bool lt : {false, true}) {
    if (lt && !gpu::cublasLtAvailable()) continue;
    gpu::GpuExecutorOptions o;
    o.preferCublasLt = lt;
    const gpu::GpuLayerStats st = expectMatchesCpu(p, in, 2e-2, o);
    CHECK_EQ(st.aliasLayers, 2);
    CHECK_EQ(st.gpuLayers, 5);
    CHECK_EQ(st.cublasLtLayers, lt ? 3 : 0);
  }
}

// The RoundToFp16 after Softmax / LayerNorm is folded into their kernels (pf_softmax_round /
// pf_layernorm_round); a RoundToFp16 of a value that is already all FP16 values (the output of a
// rounding layer, or of a copy / select / ReLU / Max of such values, or an FP16-exact constant) is
// the identity and becomes a view. A RoundToFp16 of a value that is not (an Add of two rounded
// values) stays a kernel.
TEST(gpu_fp16_rounding_of_row_ops_and_value_preserving_layers_is_folded) {
  gpu::DeviceInfo dev;
  if (!gpu::cudaDriverAvailable()) return;
  dev = gpu::deviceInfo(0);
  if (!gpu::embeddedCubin(dev.sm)) return;
  Plan p = emptyPlan(dev.sm, "fp16");
  Graph& g = p.graph;
  addInput(g, "x", {2, 3, 8, 16});
  g.initializers["gamma"] = uniformFloats({16}, 701);
  g.initializers["beta"] = uniformFloats({16}, 702);
  Tensor zero(DataType::kFloat, {});
  zero.data<float>()[0] = 0.f;
  g.initializers["zero"] = zero;
  auto round = [&](const std::string& in, const std::string& out) {
    Node r = node("RoundToFp16", "r_" + out, {in}, {out});
    r.domain = "planforge";
    g.nodes.push_back(r);
  };
  auto fp16 = [&](Node n) {
    n.precision = "fp16";
    g.nodes.push_back(n);
  };
  Node ln = node("LayerNormalization", "ln", {"x", "gamma", "beta"}, {"lnacc"});
  ln.attrs.values["axis"] = intAttr(-1);
  fp16(ln);
  round("lnacc", "lno");  // folded into pf_layernorm_round
  Node sm = node("Softmax", "sm", {"lno"}, {"smacc"});
  sm.attrs.values["axis"] = intAttr(-1);
  fp16(sm);
  round("smacc", "smo");  // folded into pf_softmax_round
  Node tr = node("Transpose", "tr", {"smo"}, {"tracc"});
  tr.attrs.values["perm"] = intsAttr({0, 2, 1, 3});
  fp16(tr);
  round("tracc", "tro");  // a copy of rounded values: view
  fp16(node("IsNaN", "nan", {"tro"}, {"isnan"}));
  fp16(node("Where", "wh", {"isnan", "zero", "tro"}, {"whacc"}));
  round("whacc", "who");  // a select of rounded values and an FP16-exact constant: view
  fp16(node("Relu", "relu", {"who"}, {"reacc"}));
  round("reacc", "reo");  // view
  fp16(node("Add", "add", {"reo", "who"}, {"adacc"}));
  round("adacc", "ado");  // a sum of rounded values is not rounded: folded into pf_binary_round
  g.outputs = {"lno", "smo", "tro", "who", "reo", "ado"};
  inferShapes(g);
  const std::map<std::string, Tensor> in{{"x", uniformFloats({2, 3, 8, 16}, 703)}};
  const auto want = runGraph(p.graph, in);
  gpu::prepareGpuPlan(p);
  gpu::GpuExecutor ex(p, {});
  const auto got = ex.run(in);
  const gpu::GpuLayerStats st = ex.stats(in);
  CHECK_EQ(st.cpuLayers, 0);
  CHECK(st.cudaGraph);
  CHECK_EQ(st.aliasLayers, 6);  // r_lno, r_smo, r_tro, r_who, r_reo, r_ado
  CHECK_EQ(st.gpuLayers, 7);    // ln, sm, tr, nan, wh, relu, add
  for (const auto& kv : want) {
    const double e = maxRelErr(got.at(kv.first), kv.second);
    if (!(e <= 2e-3)) PF_FAIL("output " << kv.first << " relative error " << e);
  }
}

// FP16 operands and output straight through LtMatmul (the NHWC 1 x 1 convolution and the FP16
// transformer GEMMs): weights stored [N][K] (transB) or [K][N], no epilogue / bias / bias + ReLU,
// with and without an FP16 C (a residual, beta = 1), against a host computation on the same
// FP16-rounded values.
TEST(gpu_cublaslt_f16_gemms_with_fp16_bias_and_residual) {
  if (!gpu::cudaDriverAvailable() || !gpu::cublasLtAvailable()) return;
  const gpu::CudaDriverApi& cu = gpu::cudaDriver();
  gpu::CUdevice dev = 0;
  gpu::CUcontext ctx = nullptr;
  gpu::checkCuda(cu.cuDeviceGet(&dev, 0), "cuDeviceGet");
  gpu::checkCuda(cu.cuDevicePrimaryCtxRetain(&ctx, dev), "retain");
  gpu::checkCuda(cu.cuCtxSetCurrent(ctx), "set");
  gpu::lt::Handle handle = nullptr;
  CHECK_EQ(gpu::cublasLt()->cublasLtCreate(&handle), 0);
  const int64_t M = 192, N = 24, K = 40;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto halves = [&](size_t n) {
    std::vector<uint16_t> h(n);
    for (auto& v : h) v = floatToHalf(u(rng));
    return h;
  };
  const std::vector<uint16_t> a = halves(M * K), w = halves(N * K), bias = halves(N), res = halves(M * N);
  std::vector<gpu::CUdeviceptr> bufs;
  auto upload = [&](const std::vector<uint16_t>& h) {
    gpu::CUdeviceptr p = 0;
    gpu::checkCuda(cu.cuMemAlloc(&p, std::max<size_t>(256, h.size() * 2)), "alloc");
    if (!h.empty()) gpu::checkCuda(cu.cuMemcpyHtoDAsync(p, h.data(), h.size() * 2, nullptr), "upload");
    bufs.push_back(p);
    return p;
  };
  const size_t wsBytes = size_t(32) << 20;
  const gpu::CUdeviceptr dA = upload(a), dBias = upload(bias), dRes = upload(res), dY = upload(std::vector<uint16_t>(M * N));
  gpu::CUdeviceptr wsBig = 0;
  gpu::checkCuda(cu.cuMemAlloc(&wsBig, wsBytes), "alloc");
  bufs.push_back(wsBig);
  int failures = 0;
  gpu::CUstream stream = nullptr;
  gpu::checkCuda(cu.cuStreamCreate(&stream, 1), "cuStreamCreate");  // non-blocking, like the executor's
  for (bool transB : {true, false}) {
    std::vector<uint16_t> wStored(N * K);  // [N][K] when transB, else [K][N]
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) wStored[transB ? n * K + k : k * N + n] = w[n * K + k];
    const gpu::CUdeviceptr dW = upload(wStored);
    for (uint32_t epi : {gpu::lt::kEpiDefault, gpu::lt::kEpiBias, gpu::lt::kEpiReluBias, gpu::lt::kEpiRelu}) {
      for (bool withC : {false, true}) {
        gpu::LtGemmDesc d;
        d.M = M; d.N = N; d.K = K;
        d.transB = transB;
        d.lda = K; d.ldb = transB ? K : N; d.ldy = N;
        d.abType = gpu::lt::kR16F; d.yType = gpu::lt::kR16F; d.computeType = gpu::lt::kCompute32F;
        d.A = dA; d.B = dW; d.Y = dY;
        d.epilogue = epi;
        if (epi & gpu::lt::kEpiBias) d.bias = dBias;
        if (withC) { d.C = dRes; d.beta = 1.f; }
        std::string why, status = "ok";
        try {
          auto m = gpu::LtMatmul::create(handle, d, wsBig, wsBytes, &why);
          if (!m) throw BuildError(ErrorCode::kInternal, "no algorithm: " + why);
          (*m)(stream);
          gpu::checkCuda(cu.cuStreamSynchronize(stream), "sync");
          std::vector<uint16_t> y(M * N);
          gpu::checkCuda(cu.cuMemcpyDtoHAsync(y.data(), dY, y.size() * 2, stream), "download");
          gpu::checkCuda(cu.cuStreamSynchronize(stream), "sync");
          double worst = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t n = 0; n < N; ++n) {
              double acc = 0;
              for (int64_t k = 0; k < K; ++k) acc += double(halfToFloat(a[i * K + k])) * halfToFloat(w[n * K + k]);
              if (withC) acc += halfToFloat(res[i * N + n]);
              if (epi & gpu::lt::kEpiBias) acc += halfToFloat(bias[n]);
              if (epi == gpu::lt::kEpiReluBias || epi == gpu::lt::kEpiRelu) acc = std::max(acc, 0.0);
              worst = std::max(worst, std::fabs(acc - halfToFloat(y[i * N + n])) / (1.0 + std::fabs(acc)));
            }
          if (worst > 5e-3) status = "wrong by " + std::to_string(worst);
        } catch (const BuildError& e) {
          status = e.what();
          gpu::checkCuda(cu.cuStreamSynchronize(stream), "sync");
        }
        if (status != "ok") ++failures;
        std::cerr << "  (transB " << transB << " epilogue " << epi << " C " << withC << ": " << status << ")\n";
      }
    }
  }
  for (auto p : bufs) cu.cuMemFree(p);
  cu.cuStreamDestroy(stream);
  gpu::cublasLt()->cublasLtDestroy(handle);
  cu.cuDevicePrimaryCtxRelease(dev);
  CHECK_EQ(failures, 0);
}
