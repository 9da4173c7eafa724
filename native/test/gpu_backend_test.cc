// GPU backend, CPU side: embedded cubins (one per SM, ELF header agrees), the plan's kernels
// section, heuristic tactics, the missing-driver and wrong-SM errors, the memory planner.
// When a CUDA driver and a matching GPU are present (the device machine), small graphs also run
// on the GPU and are compared with the CPU reference.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <random>

#include "core/executor.h"
#include "core/gpu/cubin.h"
#include "core/gpu/cublaslt.h"
#include "core/gpu/cuda_driver.h"
#include "core/gpu/device.h"
#include "core/gpu/gpu_executor.h"
#include "core/gpu/memory_planner.h"
#include "core/gpu/tactics.h"
#include "core/plan/plan.h"
#include "test_framework.h"
#include "gpu_test_util.h"
#include "test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

// x[1,8,10,10] -> FusedConv 3x3 (bias, relu) -> depthwise Conv -> MaxPool -> GlobalAveragePool ->
// Flatten -> Gemm -> Softmax; plus a LayerNorm / MatMul / Transpose / Concat branch.
Plan smallCnnPlan(int sm, const std::string& precision) {
  Plan p = emptyPlan(sm, precision);
  Graph& g = p.graph;
  addInput(g, "x", {2, 8, 10, 10});
  g.initializers["w1"] = uniformFloats({16, 8, 3, 3}, 1);
  g.initializers["b1"] = uniformFloats({16}, 2);
  g.initializers["wd"] = uniformFloats({16, 1, 3, 3}, 3);
  g.initializers["wf"] = uniformFloats({16, 5}, 4);
  g.initializers["bf"] = uniformFloats({5}, 5);
  g.initializers["gamma"] = uniformFloats({10}, 6);
  g.initializers["beta"] = uniformFloats({10}, 7);
  g.initializers["wm"] = uniformFloats({10, 6}, 8);
  Node c1 = node("FusedConv", "conv1", {"x", "w1", "b1"}, {"c1"});
  c1.domain = "planforge";
  c1.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  c1.attrs.values["activation"] = stringAttr("Relu");
  c1.precision = precision;
  g.nodes.push_back(c1);
  Node dw = node("Conv", "dw", {"c1", "wd"}, {"d1"});
  dw.attrs.values["group"] = intAttr(16);
  dw.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  dw.attrs.values["strides"] = intsAttr({2, 2});
  g.nodes.push_back(dw);
  Node mp = node("MaxPool", "pool", {"d1"}, {"p1"});
  mp.attrs.values["kernel_shape"] = intsAttr({2, 2});
  mp.attrs.values["strides"] = intsAttr({1, 1});
  g.nodes.push_back(mp);
  g.nodes.push_back(node("GlobalAveragePool", "gap", {"p1"}, {"g1"}));
  g.nodes.push_back(node("Flatten", "flat", {"g1"}, {"f1"}));
  Node fc = node("Gemm", "fc", {"f1", "wf", "bf"}, {"logits"});
  fc.precision = precision;
  g.nodes.push_back(fc);
  g.nodes.push_back(node("Softmax", "softmax", {"logits"}, {"probs"}));
  // Transformer-ish branch on the conv output rows: [2,16,10,10] -> LayerNorm over W -> MatMul.
  Node ln = node("LayerNormalization", "ln", {"c1", "gamma", "beta"}, {"l1"});
  ln.attrs.values["epsilon"] = floatAttr(1e-5f);
  g.nodes.push_back(ln);
  Node mm = node("MatMul", "mm", {"l1", "wm"}, {"m1"});
  mm.precision = precision;
  g.nodes.push_back(mm);
  Node tr = node("Transpose", "tr", {"m1"}, {"t1"});
  tr.attrs.values["perm"] = intsAttr({0, 2, 1, 3});
  g.nodes.push_back(tr);
  g.nodes.push_back(node("Sigmoid", "sig", {"t1"}, {"s1"}));
  Node cat = node("Concat", "cat", {"t1", "s1"}, {"cat"});
  cat.attrs.values["axis"] = intAttr(3);
  g.nodes.push_back(cat);
  g.nodes.push_back(node("Mul", "mul", {"cat", "cat"}, {"sq"}));
  g.outputs = {"probs", "sq"};
  inferShapes(g);
  return p;
}

// Shapes that take the split-K path (small grids, long K), broadcast residual / mask adds,
// batched MatMul, IsNaN + Where (the pattern PyTorch exports around attention softmax).
Plan splitKAndAttentionPlan(int sm, const std::string& precision) {
  Plan p = emptyPlan(sm, precision);
  Graph& g = p.graph;
  addInput(g, "x", {1, 64, 4, 4});
  addInput(g, "q", {2, 3, 5, 8});
  addInput(g, "k", {2, 3, 8, 5});
  g.initializers["w"] = uniformFloats({32, 64, 3, 3}, 21);
  g.initializers["b"] = uniformFloats({32}, 22);
  g.initializers["chan"] = uniformFloats({1, 32, 1, 1}, 23);
  g.initializers["wf"] = uniformFloats({512, 40}, 24);
  g.initializers["mask"] = uniformFloats({2, 1, 1, 5}, 25);
  g.initializers["zero"] = floats({}, {0.f});
  Node c = node("FusedConv", "conv", {"x", "w", "b", "chan"}, {"c"});
  c.domain = "planforge";
  c.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  c.precision = precision;
  g.nodes.push_back(c);
  g.nodes.push_back(node("Flatten", "flat", {"c"}, {"f"}));
  Node fc = node("Gemm", "fc", {"f", "wf"}, {"fc"});
  fc.precision = precision;
  g.nodes.push_back(fc);
  Node qk = node("FusedMatMul", "qk", {"q", "k", "mask"}, {"scores"});
  qk.domain = "planforge";
  qk.precision = precision;
  g.nodes.push_back(qk);
  Node sm_ = node("Softmax", "softmax", {"scores"}, {"probs"});
  g.nodes.push_back(sm_);
  g.nodes.push_back(node("IsNaN", "isnan", {"probs"}, {"nan"}));
  g.nodes.push_back(node("Where", "where", {"nan", "zero", "probs"}, {"attn"}));
  g.outputs = {"fc", "attn"};
  inferShapes(g);
  return p;
}

void expectGpuMatchesCpu(Plan p, const std::map<std::string, Tensor>& in, double tol) {
  gpu::prepareGpuPlan(p);
  const auto want = runGraph(p.graph, in);
  gpu::GpuExecutor ex(p);
  const auto got = ex.run(in);
  const auto st = ex.stats(in);
  if (st.cpuLayers != 0) PF_FAIL(st.cpuLayers << " layer(s) fell back to the CPU, first " << st.cpuLayerNames.front());
  for (const auto& kv : want) {
    const Tensor& g = got.at(kv.first);
    CHECK(g.shape == kv.second.shape);
    double maxErr = 0;
    for (int64_t i = 0; i < g.numel(); ++i) maxErr = std::max(maxErr, std::fabs(g.getDouble(i) - kv.second.getDouble(i)));
    if (!(maxErr <= tol)) PF_FAIL(p.header.precision << " output " << kv.first << " max error " << maxErr);
  }
  const auto again = ex.run(in);  // the specialization (and its CUDA graph) is reused
  for (const auto& kv : got) CHECK(again.at(kv.first).bytes == kv.second.bytes);
}

}  // namespace

TEST(gpu_embedded_cubins_match_their_sm) {
  const auto cubins = gpu::embeddedCubins();
  if (cubins.empty()) {
    // Built without nvcc: plans cannot get kernels, and say so.
    Plan p = smallCnnPlan(90, "fp32");
    CHECK_THROWS_CODE(gpu::attachKernels(p), ErrorCode::kInternal, "no GPU kernels for sm_90");
    return;
  }
  std::vector<int> sms;
  for (const auto& c : cubins) {
    CHECK(c.size > 1000);
    CHECK_EQ(gpu::cubinSm(c.data, c.size), c.sm);
    sms.push_back(c.sm);
  }
  CHECK(sms == std::vector<int>({80, 86, 87, 90}));
}

// Programmatic dependent launch (kernels/common.cuh): the executor may start a kernel before its
// predecessor has finished, which is only correct if every kernel waits first. Checked in the
// sources (a kernel without the prologue would read its inputs too early, only on Hopper, only now
// and then) and by the marker in every cubin that makes the executor use it.
TEST(gpu_every_kernel_waits_for_its_predecessor) {
  int kernels = 0;
  for (const char* file : {"planforge.cu", "conv_nhwc.cuh", "gemm_conv.cuh", "attention.cuh"}) {
    const std::string path = std::string(PF_NATIVE_DIR) + "/kernels/" + file;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) PF_FAIL("cannot read " << path);
    std::string src;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) src.append(buf, n);
    std::fclose(f);
    const std::string decl = "extern \"C\" __global__ void";
    for (size_t at = src.find(decl); at != std::string::npos; at = src.find(decl, at + 1)) {
      const size_t open = src.find('{', at);
      CHECK(open != std::string::npos);
      const size_t body = src.find_first_not_of(" \n", open + 1);
      const std::string head = src.substr(at, open - at);
      if (head.find("pf_programmatic_launch_v1") != std::string::npos) continue;  // the marker itself: empty
      ++kernels;
      if (src.compare(body, 21, "PF_KERNEL_PROLOGUE();") != 0) PF_FAIL(file << ": kernel without PF_KERNEL_PROLOGUE: " << head);
    }
  }
  CHECK(kernels >= 55);
  for (const auto& c : gpu::embeddedCubins())
    CHECK(std::string(reinterpret_cast<const char*>(c.data), c.size).find("pf_programmatic_launch_v1") != std::string::npos);
}

TEST(gpu_programmatic_launch_gives_the_same_outputs_and_can_be_switched_off) {
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  Plan p = smallCnnPlan(dev.sm, "fp16");
  gpu::prepareGpuPlan(p);
  std::map<std::string, Tensor> in{{"x", uniformFloats({2, 8, 10, 10}, 11)}};
  std::map<std::string, Tensor> on, off;
  const gpu::GpuLayerStats st = matchCpu(p, in, 3e-2, {}, &on);
  CHECK_EQ(st.programmaticLaunch, dev.sm >= 90);
  setenv("PLANFORGE_GPU_PDL", "0", 1);
  gpu::GpuLayerStats stOff;
  try {
    stOff = matchCpu(p, in, 3e-2, {}, &off);
  } catch (...) {
    unsetenv("PLANFORGE_GPU_PDL");
    throw;
  }
  unsetenv("PLANFORGE_GPU_PDL");
  CHECK(!stOff.programmaticLaunch);
  for (const auto& kv : on) CHECK(off.at(kv.first).bytes == kv.second.bytes);
}

TEST(gpu_cubin_header_validation_rejects_non_cubins) {
  std::vector<uint8_t> b(64, 0);
  CHECK_THROWS_CODE(gpu::cubinSm(b.data(), 10), ErrorCode::kPlanFormat, "shorter than an ELF64 header");
  CHECK_THROWS_CODE(gpu::cubinSm(b.data(), b.size()), ErrorCode::kPlanFormat, "no ELF magic");
  std::memcpy(b.data(), "\x7f" "ELF", 4);
  b[4] = 1;
  CHECK_THROWS_CODE(gpu::cubinSm(b.data(), b.size()), ErrorCode::kPlanFormat, "not a 64-bit ELF");
  b[4] = 2;
  b[5] = 1;
  b[18] = 62;  // EM_X86_64
  CHECK_THROWS_CODE(gpu::cubinSm(b.data(), b.size()), ErrorCode::kPlanFormat, "is not EM_CUDA");
  b[18] = 190;
  b[48] = 0x04;
  b[49] = 0x5a;  // the layout nvcc 13 writes: (flags >> 8) & 0xff = 90
  CHECK_EQ(gpu::cubinSm(b.data(), b.size()), 90);
}

TEST(gpu_kernels_section_round_trips) {
  if (gpu::embeddedCubins().empty()) return;
  for (int sm : {80, 86, 87, 90}) {
    Plan p = smallCnnPlan(sm, "fp16");
    gpu::prepareGpuPlan(p);
    CHECK(!p.header.tuned);
    CHECK_EQ(p.kernels.size(), size_t(1));
    CHECK_EQ(p.kernels[0].sm, sm);
    const std::vector<uint8_t> bytes = serializePlan(p);
    Plan q = parsePlan(bytes.data(), bytes.size());
    CHECK_EQ(q.kernels.size(), size_t(1));
    CHECK_EQ(q.kernels[0].name, std::string(gpu::kKernelModuleName));
    CHECK(q.kernels[0].image == p.kernels[0].image);
    CHECK_EQ(gpu::cubinSm(q.kernels[0].image.data(), q.kernels[0].image.size()), sm);
    gpu::validatePlanKernels(q);
    for (size_t i = 0; i < p.graph.nodes.size(); ++i) CHECK_EQ(q.graph.nodes[i].tactic, p.graph.nodes[i].tactic);
    bool fromPlan = false;
    CHECK(gpu::kernelImageForPlan(q, &fromPlan) == p.kernels[0].image);
    CHECK(fromPlan);
    CHECK(serializePlan(q) == bytes);  // canonical with kernels too
    // Attaching again replaces the module instead of adding a second one.
    gpu::attachKernels(q);
    CHECK_EQ(q.kernels.size(), size_t(1));
  }
}

TEST(gpu_plan_kernel_sm_mismatches_are_rejected) {
  if (gpu::embeddedCubins().empty()) return;
  Plan p = smallCnnPlan(90, "fp32");
  gpu::attachKernels(p);
  p.kernels[0].sm = 80;  // declared for another SM than the plan
  CHECK_THROWS_CODE(gpu::validatePlanKernels(p), ErrorCode::kWrongSm, "is for sm_80 but the plan targets sm_90");
  const gpu::EmbeddedCubin* c80 = gpu::embeddedCubin(80);
  p.kernels[0].sm = 90;
  p.kernels[0].image.assign(c80->data, c80->data + c80->size);  // declared sm_90, compiled for sm_80
  CHECK_THROWS_CODE(gpu::validatePlanKernels(p), ErrorCode::kPlanFormat, "its cubin is for sm_80");
}

TEST(gpu_heuristic_tactics_are_deterministic) {
  Plan a = smallCnnPlan(86, "fp16"), b = smallCnnPlan(86, "fp16");
  for (auto* p : {&a, &b})
    for (auto& n : p->graph.nodes) n.tactic = gpu::heuristicTactic(p->graph, n);
  for (size_t i = 0; i < a.graph.nodes.size(); ++i) CHECK_EQ(a.graph.nodes[i].tactic, b.graph.nodes[i].tactic);
  auto tacticOf = [](const Plan& p, const std::string& name) {
    for (const auto& n : p.graph.nodes)
      if (n.name == name) return n.tactic;
    return int64_t(-1);
  };
  CHECK_EQ(tacticOf(a, "conv1"), int64_t(gpu::kTacticConvNhwc128x128));  // FP16, 16 output channels: NHWC
  CHECK_EQ(tacticOf(a, "dw"), int64_t(gpu::kTacticConvDepthwise));
  CHECK_EQ(tacticOf(a, "fc"), int64_t(gpu::kTacticGemmF16TensorCore));
  CHECK_EQ(tacticOf(a, "flat"), int64_t(gpu::kTacticAlias));
  CHECK_EQ(tacticOf(a, "softmax"), int64_t(gpu::kTacticRowReduce));
  Plan f = smallCnnPlan(86, "fp32");
  for (const auto& n : f.graph.nodes)
    if (n.name == "conv1") CHECK_EQ(gpu::heuristicTactic(f.graph, n), int64_t(gpu::kTacticConvF32));
  Node unknown = node("NonMaxSuppression", "nms", {"x"}, {"y"});
  CHECK_EQ(gpu::heuristicTactic(f.graph, unknown), int64_t(gpu::kTacticReference));
  CHECK_EQ(std::string(gpu::tacticName(gpu::kTacticConvF16TensorCore)), std::string("conv_f16_tensorcore"));
}

TEST(gpu_missing_driver_is_a_clear_error) {
  CHECK_THROWS_CODE(gpu::loadCudaDriver("libplanforge-no-such-driver.so.1"), ErrorCode::kNoGpu,
                    "no CUDA driver: libplanforge-no-such-driver.so.1 not found");
  if (gpu::cudaDriverAvailable()) return;  // the device machine
  CHECK_THROWS_CODE(gpu::cudaDriver(), ErrorCode::kNoGpu, "no CUDA driver: libcuda.so.1 not found");
  CHECK_THROWS_CODE(gpu::listDevices(), ErrorCode::kNoGpu, "libcuda.so.1");
  Plan p = smallCnnPlan(90, "fp32");
  CHECK_THROWS_CODE(gpu::GpuExecutor(p), ErrorCode::kNoGpu, "no CUDA driver");
}

TEST(gpu_wrong_sm_names_both_architectures) {
  CHECK_THROWS_CODE(gpu::checkPlanMatchesDevice(80, 90, "NVIDIA H100"), ErrorCode::kWrongSm, "plan is for sm_80, this GPU is sm_90 (NVIDIA H100)");
  CHECK_THROWS_CODE(gpu::checkPlanMatchesDevice(86, 89), ErrorCode::kWrongSm, "plan is for sm_86, this GPU is sm_89");
  gpu::checkPlanMatchesDevice(87, 87);
}

TEST(gpu_memory_planner_reuses_dead_buffers) {
  // A chain: each buffer dies when the next one is written, so two slots suffice.
  std::vector<gpu::BufferRequest> chain;
  for (int i = 0; i < 10; ++i) chain.push_back({1000, i, i + 1});
  gpu::MemoryPlan mp = gpu::planMemory(chain, 256);
  CHECK_EQ(mp.arenaSize, size_t(2048));
  for (size_t o : mp.offsets) CHECK_EQ(o % 256, size_t(0));
  // All alive at once: no sharing.
  std::vector<gpu::BufferRequest> all;
  for (int i = 0; i < 4; ++i) all.push_back({512, 0, 10});
  CHECK_EQ(gpu::planMemory(all, 256).arenaSize, size_t(2048));
  CHECK_EQ(gpu::planMemory({}, 256).arenaSize, size_t(0));
}

TEST(gpu_memory_planner_never_overlaps_live_buffers) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::vector<gpu::BufferRequest> reqs;
    size_t total = 0;
    for (int i = 0; i < 40; ++i) {
      const int a = static_cast<int>(rng() % 30), len = static_cast<int>(rng() % 8);
      reqs.push_back({static_cast<size_t>(rng() % 5000 + 1), a, a + len});
      total += (reqs.back().size + 255) / 256 * 256;
    }
    const gpu::MemoryPlan mp = gpu::planMemory(reqs, 256);
    CHECK(mp.arenaSize <= total);
    CHECK(gpu::planMemory(reqs, 256).offsets == mp.offsets);  // deterministic
    for (size_t i = 0; i < reqs.size(); ++i)
      for (size_t j = i + 1; j < reqs.size(); ++j) {
        const bool liveTogether = !(reqs[i].lastStep < reqs[j].firstStep || reqs[j].lastStep < reqs[i].firstStep);
        const bool memOverlap = mp.offsets[i] < mp.offsets[j] + reqs[j].size && mp.offsets[j] < mp.offsets[i] + reqs[i].size;
        CHECK(!(liveTogether && memOverlap));
      }
  }
}

// Runs only where a CUDA driver and a GPU of a supported SM exist (the device machine).
TEST(gpu_executor_matches_cpu_reference_on_small_graphs) {
  CHECK_EQ(runGraph(smallCnnPlan(90, "fp32").graph, {{"x", uniformFloats({2, 8, 10, 10}, 11)}}).size(), size_t(2));
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  for (const char* precision : {"fp32", "fp16"}) {
    Plan p = smallCnnPlan(dev.sm, precision);
    gpu::prepareGpuPlan(p);
    std::map<std::string, Tensor> in{{"x", uniformFloats({2, 8, 10, 10}, 11)}};
    const auto want = runGraph(p.graph, in);
    gpu::GpuExecutor ex(p);
    const auto got = ex.run(in);
    const auto st = ex.stats(in);
    CHECK_EQ(st.cpuLayers, 0);
    const double tol = std::string(precision) == "fp16" ? 3e-2 : 1e-4;
    for (const auto& kv : want) {
      const Tensor& g = got.at(kv.first);
      CHECK(g.shape == kv.second.shape);
      double maxErr = 0;
      for (int64_t i = 0; i < g.numel(); ++i)
        maxErr = std::max(maxErr, std::fabs(double(g.data<float>()[i]) - kv.second.data<float>()[i]));
      if (!(maxErr <= tol)) PF_FAIL(precision << " output " << kv.first << " max error " << maxErr);
    }
    // Second run reuses the specialization (and its CUDA graph): same answer.
    const auto again = ex.run(in);
    CHECK(again.at("probs").bytes == got.at("probs").bytes);
    CHECK_THROWS_CODE(gpu::GpuExecutor(smallCnnPlan(dev.sm == 80 ? 90 : 80, "fp32")), ErrorCode::kWrongSm, "this GPU is");
  }
}

TEST(gpu_executor_split_k_broadcast_residual_and_attention_masking) {
  std::map<std::string, Tensor> in{{"x", uniformFloats({1, 64, 4, 4}, 31)}, {"q", uniformFloats({2, 3, 5, 8}, 32)},
                                   {"k", uniformFloats({2, 3, 8, 5}, 33)}};
  CHECK_EQ(runGraph(splitKAndAttentionPlan(90, "fp32").graph, in).size(), size_t(2));  // the graph itself is valid
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  expectGpuMatchesCpu(splitKAndAttentionPlan(dev.sm, "fp32"), in, 2e-4);
  expectGpuMatchesCpu(splitKAndAttentionPlan(dev.sm, "fp16"), in, 1e-1);
}

TEST(gpu_tune_plan_keeps_candidates_and_results) {
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  Plan p = smallCnnPlan(dev.sm, "fp16");
  std::map<std::string, Tensor> in{{"x", uniformFloats({2, 8, 10, 10}, 41)}};
  const gpu::GpuLayerStats st = gpu::tunePlan(p, in);
  CHECK(p.header.tuned);
  CHECK(st.tunedLayers >= 2);  // conv1, fc, mm have two candidates each
  for (const auto& n : p.graph.nodes) {
    const auto c = gpu::tuningCandidates(p.graph, n, gpu::cublasLtAvailable());  // cuBLASLt too where present
    if (!c.empty()) CHECK(std::find(c.begin(), c.end(), n.tactic) != c.end());
  }
  const std::vector<uint8_t> bytes = serializePlan(p);
  expectGpuMatchesCpu(parsePlan(bytes.data(), bytes.size()), in, 3e-2);
}

TEST(gpu_tuning_with_a_timing_cache_reuses_measurements) {
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  std::map<std::string, Tensor> in{{"x", uniformFloats({2, 8, 10, 10}, 51)}};
  gpu::TimingCache cache;
  Plan a = smallCnnPlan(dev.sm, "fp16"), b = smallCnnPlan(dev.sm, "fp16");
  const gpu::GpuLayerStats first = gpu::tunePlan(a, in, 0, &cache);
  CHECK_EQ(first.timingCacheHits, 0);
  CHECK(cache.size() >= 2);
  const gpu::GpuLayerStats second = gpu::tunePlan(b, in, 0, &cache);
  CHECK_EQ(second.timingCacheHits, second.tunedLayers);
  for (size_t i = 0; i < a.graph.nodes.size(); ++i) CHECK_EQ(a.graph.nodes[i].tactic, b.graph.nodes[i].tactic);
}

// FP16 plans: a depthwise convolution rounds its own output (pf_conv_depthwise_round), so its
// RoundToFp16 is a view and the layer is one launch; the values are the CPU reference's.
TEST(gpu_depthwise_convolution_rounds_in_its_kernel) {
  Plan p = emptyPlan(90, "fp16");
  Graph& g = p.graph;
  addInput(g, "x", {2, 16, 9, 9});
  g.initializers["wd"] = uniformFloats({16, 1, 3, 3}, 41);
  g.initializers["bd"] = uniformFloats({16}, 42);
  Node dw = node("FusedConv", "dw", {"x", "wd", "bd"}, {"acc"});
  dw.domain = "planforge";
  dw.attrs.values["group"] = intAttr(16);
  dw.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  dw.attrs.values["activation"] = stringAttr("HardSwish");
  dw.precision = "fp16";
  g.nodes.push_back(dw);
  Node r = node("RoundToFp16", "round", {"acc"}, {"y"});
  r.domain = "planforge";
  g.nodes.push_back(r);
  g.nodes.push_back(node("Relu", "after", {"y"}, {"z"}));  // the rounded value is not a graph output itself
  g.outputs = {"z"};
  inferShapes(g);
  const std::map<std::string, Tensor> in{{"x", uniformFloats({2, 16, 9, 9}, 43)}};
  CHECK_EQ(runGraph(g, in).size(), size_t(1));
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  p.header.targetSm = dev.sm;
  expectGpuMatchesCpu(p, in, 1e-6);  // same FP16 rounding on both sides
  gpu::prepareGpuPlan(p);
  gpu::GpuExecutor ex(p);
  const auto st = ex.stats(in);
  CHECK_EQ(st.aliasLayers, 1);
  CHECK_EQ(st.launches, 2);  // the depthwise convolution (rounding inside) and the ReLU
}

// INT8 plans' activation Q/DQ pairs on the GPU: QuantizeLinear -> DequantizeLinear per tensor (int8,
// zero point 0 as the INT8 pass writes them; uint8 with a zero point) and per axis, ties included
// (x / scale exactly k + 0.5 rounds half to even): the same values as the CPU reference, bit for bit.
TEST(gpu_quantize_dequantize_match_the_cpu_reference) {
  Plan p = emptyPlan(90, "int8");
  Graph& g = p.graph;
  addInput(g, "x", {2, 3, 5, 4});
  g.initializers["s"] = floats({}, {0.05f});
  g.initializers["z"] = Tensor(DataType::kInt8, {});
  g.initializers["su"] = floats({}, {0.1f});
  Tensor zu(DataType::kUint8, {});
  zu.data<uint8_t>()[0] = 128;
  g.initializers["zu"] = zu;
  g.initializers["sa"] = floats({3}, {0.02f, 0.5f, 0.125f});
  g.initializers["za"] = Tensor(DataType::kInt8, {3});
  g.nodes.push_back(node("QuantizeLinear", "q", {"x", "s", "z"}, {"xq"}));
  g.nodes.push_back(node("DequantizeLinear", "dq", {"xq", "s", "z"}, {"y"}));
  g.nodes.push_back(node("QuantizeLinear", "qu", {"x", "su", "zu"}, {"xu"}));
  g.nodes.push_back(node("DequantizeLinear", "dqu", {"xu", "su", "zu"}, {"yu"}));
  Node qa = node("QuantizeLinear", "qa", {"x", "sa", "za"}, {"xa"});
  qa.attrs.values["axis"] = intAttr(1);
  Node da = node("DequantizeLinear", "dqa", {"xa", "sa", "za"}, {"ya"});
  da.attrs.values["axis"] = intAttr(1);
  g.nodes.push_back(qa);
  g.nodes.push_back(da);
  g.outputs = {"y", "yu", "ya", "xq"};
  inferShapes(g);
  Tensor x = uniformFloats({2, 3, 5, 4}, 77);
  for (int64_t i = 0; i < x.numel(); i += 7) x.data<float>()[i] = 0.05f * (static_cast<float>(i % 9) - 4.f + 0.5f);  // ties
  x.data<float>()[3] = 100.f;  // saturates
  const std::map<std::string, Tensor> in{{"x", x}};
  CHECK_EQ(runGraph(g, in).size(), size_t(4));
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  p.header.targetSm = dev.sm;
  gpu::prepareGpuPlan(p);
  const auto want = runGraph(p.graph, in);
  gpu::GpuExecutor ex(p);
  const auto got = ex.run(in);
  CHECK_EQ(ex.stats(in).cpuLayers, 0);
  for (const auto& kv : want) CHECK(got.at(kv.first).bytes == kv.second.bytes);
}

// FP16 plans: GlobalAveragePool and binary ops (an SE block's pool and Mul) round their own outputs
// (pf_row_mean_round, pf_binary_round), so every RoundToFp16 here is a view; values as the CPU's.
// A squeeze-and-excitation block of an FP16 plan (MobileNetV3): pool -> 1x1 ReLU -> 1x1 HardSigmoid
// -> scale, each followed by its RoundToFp16.
Plan seBlockPlan(int sm, int batch = 2) {
  Plan p = emptyPlan(sm, "fp16");
  Graph& g = p.graph;
  addInput(g, "x", {batch, 16, 7, 7});
  g.initializers["w1"] = uniformFloats({4, 16, 1, 1}, 51);
  g.initializers["b1"] = uniformFloats({4}, 54);
  g.initializers["w2"] = uniformFloats({16, 4, 1, 1}, 52);
  auto fp16 = [](Node n) {
    n.precision = "fp16";
    return n;
  };
  auto round = [&](const std::string& in, const std::string& out) {
    Node r = node("RoundToFp16", "round_" + out, {in}, {out});
    r.domain = "planforge";
    g.nodes.push_back(r);
  };
  g.nodes.push_back(fp16(node("GlobalAveragePool", "pool", {"x"}, {"p32"})));
  round("p32", "p");
  Node fc1 = node("FusedConv", "fc1", {"p", "w1", "b1"}, {"f32"});
  fc1.domain = "planforge";
  fc1.attrs.values["activation"] = stringAttr("Relu");
  g.nodes.push_back(fp16(fc1));
  round("f32", "f");
  Node fc2 = node("FusedConv", "fc2", {"f", "w2"}, {"s32"});
  fc2.domain = "planforge";
  fc2.attrs.values["activation"] = stringAttr("HardSigmoid");
  g.nodes.push_back(fp16(fc2));
  round("s32", "s");
  g.nodes.push_back(fp16(node("Mul", "scale", {"x", "s"}, {"y32"})));
  round("y32", "y");
  g.nodes.push_back(node("Relu", "after", {"y"}, {"z"}));
  g.outputs = {"z"};
  inferShapes(g);
  return p;
}

TEST(gpu_se_block_pool_and_mul_round_in_their_kernels) {
  Plan p = seBlockPlan(90);
  const std::map<std::string, Tensor> in{{"x", uniformFloats({2, 16, 7, 7}, 53)}};
  CHECK_EQ(runGraph(p.graph, in).size(), size_t(1));
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  p.header.targetSm = dev.sm;
  expectGpuMatchesCpu(p, in, 1e-2);
  gpu::prepareGpuPlan(p);
  gpu::GpuExecutor ex(p);
  CHECK_EQ(ex.stats(in).aliasLayers, 4);  // the four RoundToFp16
}

// The SE block's fc layers on the matrix-vector kernel (kTacticConvVector): one launch each, the
// roundings inside; eligibility on the CPU.
TEST(gpu_one_pixel_convolutions_on_the_vector_kernel) {
  Plan p = seBlockPlan(90);
  const Graph& g = p.graph;
  for (const auto& n : g.nodes) {
    CHECK_EQ(gpu::convVectorEligible(g, n), n.name == "fc1" || n.name == "fc2");
    if (gpu::convVectorEligible(g, n)) {
      CHECK_EQ(gpu::runtimeTactic(g, n, gpu::kTacticConvVector, false), int64_t(gpu::kTacticConvVector));
      CHECK(gpu::heuristicTactic(g, n) != gpu::kTacticConvVector);  // only the autotuner picks it
    }
  }
  CHECK_EQ(std::string(gpu::tacticName(gpu::kTacticConvVector)), std::string("conv_1x1_vector"));
  Node c = g.nodes[2];  // fc1
  CHECK_EQ(c.name, std::string("fc1"));
  c.attrs.values["strides"] = intsAttr({2, 2});
  CHECK(!gpu::convVectorEligible(g, c));
  CHECK_EQ(gpu::runtimeTactic(g, c, gpu::kTacticConvVector, false), gpu::heuristicTactic(g, c));
  c = g.nodes[2];
  c.attrs.values["group"] = intAttr(2);
  CHECK(!gpu::convVectorEligible(g, c));
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  for (int batch : {1, 3}) {
    Plan q = seBlockPlan(dev.sm, batch);
    gpu::prepareGpuPlan(q);
    for (auto& n : q.graph.nodes)
      if (gpu::convVectorEligible(q.graph, n)) n.tactic = gpu::kTacticConvVector;
    q.header.tuned = true;
    const std::map<std::string, Tensor> in{{"x", uniformFloats({batch, 16, 7, 7}, 55)}};
    gpu::GpuExecutor probe(q);
    const auto chosen = probe.chosenTactics(in);
    CHECK_EQ(chosen.at("fc1"), int64_t(gpu::kTacticConvVector));
    CHECK_EQ(chosen.at("fc2"), int64_t(gpu::kTacticConvVector));
    const gpu::GpuLayerStats st = matchCpu(q, in, 1e-2, {});
    CHECK_EQ(st.launches, 5);  // pool, fc1, fc2, scale, relu: one each
  }
}

// Tensors of other element types on the GPU (what an attention_mask input turns into): Cast int64 -> bool ->
// float and float -> int64 / int32 (truncation), Not / And with broadcasting, Expand (bool and float),
// Transpose and Gather of bool / int64 tensors; bit-identical to the CPU reference, nothing on the CPU.
TEST(gpu_mask_and_id_layers_of_any_element_type) {
  Plan p = emptyPlan(90, "fp32");
  Graph& g = p.graph;
  addInput(g, "m", {2, 5}, DataType::kInt64);
  addInput(g, "x", {2, 5});
  Tensor keep(DataType::kBool, {1, 5});
  for (int i = 0; i < 5; ++i) keep.data<uint8_t>()[i] = i != 3;
  g.initializers["keep"] = keep;
  g.initializers["shape3"] = int64s({3}, {3, 2, 5});
  g.initializers["idx"] = int64s({4}, {4, 0, -1, 2});
  auto attr = [](Node n, const char* k, Attribute a) {
    n.attrs.values[k] = a;
    return n;
  };
  g.nodes.push_back(attr(node("Cast", "to_bool", {"m"}, {"mb"}), "to", intAttr(static_cast<int64_t>(DataType::kBool))));
  g.nodes.push_back(node("Not", "not", {"mb"}, {"nb"}));
  g.nodes.push_back(node("And", "and", {"nb", "keep"}, {"ab"}));
  g.nodes.push_back(node("Expand", "expand", {"ab", "shape3"}, {"eb"}));
  g.nodes.push_back(attr(node("Transpose", "transpose", {"eb"}, {"tb"}), "perm", intsAttr({2, 0, 1})));
  g.nodes.push_back(attr(node("Gather", "gather", {"tb", "idx"}, {"gb"}), "axis", intAttr(0)));
  g.nodes.push_back(attr(node("Cast", "to_float", {"gb"}, {"gf"}), "to", intAttr(static_cast<int64_t>(DataType::kFloat))));
  g.nodes.push_back(attr(node("Gather", "gather_ids", {"m", "idx"}, {"gi"}), "axis", intAttr(1)));
  g.nodes.push_back(node("Expand", "expand_f", {"x", "shape3"}, {"ef"}));
  g.nodes.push_back(attr(node("Cast", "to_i64", {"x"}, {"xi"}), "to", intAttr(static_cast<int64_t>(DataType::kInt64))));
  g.nodes.push_back(attr(node("Cast", "to_i32", {"x"}, {"x32"}), "to", intAttr(static_cast<int64_t>(DataType::kInt32))));
  g.outputs = {"gf", "gi", "ef", "xi", "x32"};
  inferShapes(g);
  Tensor m = int64s({2, 5}, {0, 1, 1, 0, 1, 1, 1, 0, 0, 7});
  Tensor x = uniformFloats({2, 5}, 91);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] *= 9.f;  // -9 .. 9: truncation toward zero
  const std::map<std::string, Tensor> in{{"m", m}, {"x", x}};
  const auto want = runGraph(g, in);
  CHECK_EQ(want.size(), size_t(5));
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  p.header.targetSm = dev.sm;
  gpu::prepareGpuPlan(p);
  gpu::GpuExecutor ex(p);
  const auto got = ex.run(in);
  const gpu::GpuLayerStats st = ex.stats(in);
  CHECK_EQ(st.cpuLayers, 0);
  CHECK(st.cudaGraph);
  for (const auto& kv : want) {
    CHECK(got.at(kv.first).dtype == kv.second.dtype);
    CHECK(got.at(kv.first).bytes == kv.second.bytes);
  }
}
