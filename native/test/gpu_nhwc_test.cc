// NHWC FP16 convolutions (tactics kTacticConvNhwc*, kernels/conv_nhwc.cuh). CPU side (CI): which
// convolutions are eligible, the tactic table and its limits, the kernels in every SM's cubin,
// tactic ids through plan serialization. GPU side (the device machine): a ResNet-like FP16 plan
// whose activations stay FP16 NHWC between convolutions, MaxPool and GlobalAveragePool, against
// the CPU reference, for every tile, with split-K, with FP32 NCHW neighbours (reformat in,
// FP32 NCHW out, FP32 residual), autotuned, and with the path switched off.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

#include "core/executor.h"
#include "core/gpu/cubin.h"
#include "core/gpu/cublaslt.h"
#include "core/gpu/cuda_driver.h"
#include "core/gpu/device.h"
#include "core/gpu/gpu_executor.h"
#include "core/gpu/nhwc_layout.h"
#include "core/gpu/tactics.h"
#include "core/plan/plan.h"
#include "test_framework.h"
#include "gpu_test_util.h"
#include "test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

Node conv(const std::string& name, std::vector<std::string> ins, const std::string& out, const std::string& precision,
          const std::string& activation = "") {
  Node n = node(activation.empty() && ins.size() < 4 ? "Conv" : "FusedConv", name, std::move(ins), {out});
  if (n.opType == "FusedConv") n.domain = "planforge";
  if (!activation.empty()) n.attrs.values["activation"] = stringAttr(activation);
  n.precision = precision;
  return n;
}
Node roundNode(const std::string& in, const std::string& out) {
  Node r = node("RoundToFp16", "round_" + in, {in}, {out});
  r.domain = "planforge";
  return r;
}
// Convolution weights uniform in +-1.7 / sqrt(fan-in): activations stay near 1 through a deep chain.
Tensor fanInScaled(Shape shape, uint32_t seed) {
  Tensor t = uniformFloats(shape, seed);
  const float f = 1.7f / std::sqrt(static_cast<float>(shape[1] * shape[2] * shape[3]));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] *= f;
  return t;
}
// An FP16 layer and its RoundToFp16 (as the precision pass writes them).
void addRounded(Graph& g, Node n, const std::string& rounded) {
  const std::string acc = n.outputs[0];
  g.nodes.push_back(std::move(n));
  g.nodes.push_back(roundNode(acc, rounded));
}

// ResNet-like FP16 plan as the precision pass writes it (a RoundToFp16 after every FP16 layer):
// stem 3x3/2 on 3 channels (FP32 NCHW input: reformat, channels padded to 8) -> MaxPool ->
// 1x1 (24 channels: a partial tile) -> 3x3 -> 1x1 + residual (the pool output) -> 3x3/2 HardSwish
// and a 1x1/2 downsample -> 3x3 dilation 2 + residual (split-K at batch 1) -> GAP -> Flatten -> Gemm.
// Side exits: c7 reads an NHWC value and writes a graph output (FP32 NCHW, rounded); c8 reads an
// FP32 graph input with an FP32 residual (reformat in, NCHW out).
constexpr int kConvs = 9;  // c0 .. c8, all eligible
Plan resnetLike(int sm, int batch) {
  const std::string pr = "fp16";
  Plan p = emptyPlan(sm, pr);
  Graph& g = p.graph;
  addInput(g, "x", {batch, 3, 32, 32});
  addInput(g, "x2", {batch, 8, 8, 8});
  addInput(g, "r2", {batch, 16, 8, 8});
  const std::vector<std::pair<std::string, Shape>> ws{{"w0", {16, 3, 3, 3}},  {"w1", {24, 16, 1, 1}}, {"w2", {40, 24, 3, 3}},
                                                      {"w3", {16, 40, 1, 1}}, {"w4", {32, 16, 3, 3}}, {"w5", {32, 16, 1, 1}},
                                                      {"w6", {32, 32, 3, 3}}, {"w7", {8, 40, 1, 1}},  {"w8", {16, 8, 3, 3}}};
  uint32_t seed = 900;
  for (const auto& w : ws) {
    g.initializers[w.first] = uniformFloats(w.second, ++seed);
    g.initializers["b" + w.first.substr(1)] = uniformFloats({w.second[0]}, ++seed);
  }
  g.initializers["wf"] = uniformFloats({32, 10}, ++seed);
  g.initializers["bf"] = uniformFloats({10}, ++seed);
  auto add = [&](Node n, const std::string& rounded) { addRounded(g, std::move(n), rounded); };
  Node c0 = conv("c0", {"x", "w0", "b0"}, "c0acc", pr, "Relu");
  c0.attrs.values["strides"] = intsAttr({2, 2});
  c0.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  add(c0, "s0");
  Node mp = node("MaxPool", "pool", {"s0"}, {"p0"});
  mp.attrs.values["kernel_shape"] = intsAttr({3, 3});
  mp.attrs.values["strides"] = intsAttr({2, 2});
  mp.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  g.nodes.push_back(mp);
  add(conv("c1", {"p0", "w1", "b1"}, "c1acc", pr, "Relu"), "a1");
  Node c2 = conv("c2", {"a1", "w2", "b2"}, "c2acc", pr, "Relu");
  c2.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  add(c2, "a2");
  add(conv("c3", {"a2", "w3", "b3", "p0"}, "c3acc", pr, "Relu"), "a3");
  Node c4 = conv("c4", {"a3", "w4", "b4"}, "c4acc", pr, "HardSwish");
  c4.attrs.values["strides"] = intsAttr({2, 2});
  c4.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  add(c4, "a4");
  Node c5 = conv("c5", {"a3", "w5", "b5"}, "c5acc", pr);
  c5.attrs.values["strides"] = intsAttr({2, 2});
  add(c5, "a5");
  Node c6 = conv("c6", {"a4", "w6", "b6", "a5"}, "c6acc", pr, "Relu");
  c6.attrs.values["pads"] = intsAttr({2, 2, 2, 2});
  c6.attrs.values["dilations"] = intsAttr({2, 2});
  add(c6, "a6");
  g.nodes.push_back(node("GlobalAveragePool", "gap", {"a6"}, {"gp"}));
  g.nodes.push_back(node("Flatten", "flat", {"gp"}, {"fl"}));
  Node fc = node("Gemm", "fc", {"fl", "wf", "bf"}, {"fcacc"});
  fc.precision = pr;
  add(fc, "logits");
  add(conv("c7", {"a2", "w7", "b7"}, "c7acc", pr), "side");
  Node c8 = conv("c8", {"x2", "w8", "b8", "r2"}, "c8acc", pr, "Relu");
  c8.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  add(c8, "side2");
  g.outputs = {"logits", "side", "side2"};
  inferShapes(g);
  return p;
}
std::map<std::string, Tensor> resnetInputs(int batch) {
  return {{"x", uniformFloats({batch, 3, 32, 32}, 71)}, {"x2", uniformFloats({batch, 8, 8, 8}, 72)}, {"r2", uniformFloats({batch, 16, 8, 8}, 73)}};
}


gpu::GpuLayerStats expectMatches(Plan p, const std::map<std::string, Tensor>& in, gpu::GpuExecutorOptions o = {}) {
  return matchCpu(std::move(p), in, 2e-2, o);
}

}  // namespace

// ------------------------------------------------------------------ CPU side

TEST(gpu_nhwc_eligibility_candidates_and_heuristic) {
  Plan p = resnetLike(90, 1);
  const Graph& g = p.graph;
  std::set<std::string> eligible;
  for (const auto& n : g.nodes)
    if (gpu::nhwcConvEligible(g, n)) eligible.insert(n.name);
  CHECK_EQ(eligible.size(), size_t(kConvs));  // never the Gemm, the pool or the views
  for (const auto& n : g.nodes) {
    if (!eligible.count(n.name)) continue;
    const auto c = gpu::candidateTactics(g, n);
    CHECK_EQ(c.size(), size_t(6));
    CHECK_EQ(c[0], int64_t(gpu::kTacticConvNhwc128x128));
    CHECK_EQ(gpu::heuristicTactic(g, n), int64_t(gpu::kTacticConvNhwc128x128));
    CHECK(std::find(c.begin(), c.end(), int64_t(gpu::kTacticConvF16TensorCore)) != c.end());  // still timed against NCHW
  }
  // Not eligible: FP32, output channels not a multiple of 8, two groups, weights computed at run
  // time, an activation the epilogue lacks.
  Node c = g.nodes[0];
  Graph h = g;
  c.precision = "fp32";
  CHECK(!gpu::nhwcConvEligible(h, c));
  c.precision = "fp16";
  CHECK(gpu::nhwcConvEligible(h, c));
  h.initializers["w0"] = uniformFloats({20, 3, 3, 3}, 5);
  CHECK(!gpu::nhwcConvEligible(h, c));
  h = g;
  c.attrs.values["group"] = intAttr(2);
  CHECK(!gpu::nhwcConvEligible(h, c));
  c.attrs.values.erase("group");
  h.initializers.erase("w0");
  CHECK(!gpu::nhwcConvEligible(h, c));
  h = g;
  c.attrs.values["activation"] = stringAttr("Softplus");
  CHECK(!gpu::nhwcConvEligible(h, c));
  // A plan asking for an NHWC tile on a convolution that cannot have one runs the heuristic tactic.
  CHECK_EQ(gpu::runtimeTactic(h, c, gpu::kTacticConvNhwc64x64, false), gpu::heuristicTactic(h, c));
}

TEST(gpu_nhwc_tiles_fit_every_target_and_are_in_every_cubin) {
  std::set<int64_t> ids;
  std::set<std::string> names;
  for (const auto& t : gpu::nhwcConvTiles()) {
    ids.insert(t.tactic);
    names.insert(gpu::tacticName(t.tactic));
    CHECK(gpu::isNhwcConvTactic(t.tactic));
    CHECK_EQ(gpu::nhwcConvTile(t.tactic), &t);
    CHECK(t.threads % 32 == 0 && t.threads <= 256);
    CHECK((t.bm * 4) % t.threads == 0 && (t.bn * 4) % t.threads == 0);  // whole 16-byte chunks per thread
    CHECK(t.sharedBytes() <= 99 * 1024);  // sm_86 / sm_87: 99 KiB of shared memory per block at most
  }
  CHECK_EQ(ids.size(), gpu::nhwcConvTiles().size());
  CHECK_EQ(names.size(), gpu::nhwcConvTiles().size());
  CHECK(!gpu::isNhwcConvTactic(gpu::kTacticConvCublasLtF16));
  CHECK_EQ(std::string(gpu::tacticName(gpu::kTacticConvNhwc256x128)), std::string("conv_nhwc_f16_256x128"));
  const auto& cubins = gpu::embeddedCubins();
  if (cubins.empty()) return;  // built without nvcc
  for (const auto& c : cubins) {
    const std::string image(reinterpret_cast<const char*>(c.data), c.size);
    for (const auto& t : gpu::nhwcConvTiles()) {
      CHECK(image.find(t.kernel) != std::string::npos);
      CHECK(image.find(t.kernelC4) != std::string::npos);
    }
    for (const char* k : {"pf_conv_nhwc_splitk_reduce", "pf_nchw_to_nhwc16", "pf_maxpool_nhwc16", "pf_gap_nhwc16", "pf_subsample_nhwc16"})
      CHECK(image.find(k) != std::string::npos);
  }
}

TEST(gpu_nhwc_tactics_survive_plan_serialization) {
  Plan p = resnetLike(90, 1);
  for (auto& n : p.graph.nodes) n.tactic = gpu::heuristicTactic(p.graph, n);  // (no cubin needed: ASan builds have none)
  int64_t t = gpu::kTacticConvNhwc128x128;
  for (auto& n : p.graph.nodes)
    if (gpu::nhwcConvEligible(p.graph, n)) n.tactic = t = (t == gpu::kTacticConvNhwc64x64 ? gpu::kTacticConvNhwc128x128 : t + 1);
  p.header.tuned = true;
  const std::vector<uint8_t> bytes = serializePlan(p);
  const Plan q = parsePlan(bytes.data(), bytes.size());
  for (size_t i = 0; i < p.graph.nodes.size(); ++i) {
    CHECK_EQ(q.graph.nodes[i].tactic, p.graph.nodes[i].tactic);
    CHECK_EQ(gpu::runtimeTactic(q.graph, q.graph.nodes[i], q.graph.nodes[i].tactic, false), p.graph.nodes[i].tactic);
  }
}

// The executor's folded roundings for a test graph: layers whose one reader is their RoundToFp16.
std::set<size_t> roundFusedOf(const Graph& g) {
  std::map<std::string, int> readers;
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs)
      if (!in.empty()) ++readers[in];
  std::set<size_t> r;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const std::string& o = g.nodes[i].outputs[0];
    if (readers[o] != 1 || std::find(g.outputs.begin(), g.outputs.end(), o) != g.outputs.end()) continue;
    for (const auto& n : g.nodes)
      if (n.opType == "RoundToFp16" && n.inputs[0] == o) r.insert(i);
  }
  return r;
}
std::set<size_t> eligibleConvs(const Graph& g) {
  std::set<size_t> c;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (gpu::nhwcConvEligible(g, g.nodes[i])) c.insert(i);
  return c;
}
std::set<std::string> convNames(const Graph& g, const std::set<size_t>& idx) {
  std::set<std::string> s;
  for (size_t i : idx) s.insert(g.nodes[i].name);
  return s;
}

TEST(gpu_nhwc_layout_keeps_conv_chains_and_drops_reformats) {
  // ResNet-like: everything between the stem and GAP is NHWC; the side exits write FP32 NCHW.
  const Plan r = resnetLike(90, 1);
  gpu::NhwcLayout l = gpu::planNhwcLayout(r.graph, eligibleConvs(r.graph), roundFusedOf(r.graph));
  CHECK_EQ(l.convs.size(), size_t(kConvs));
  CHECK(l.values == std::set<std::string>({"c0acc", "s0", "p0", "c1acc", "a1", "c2acc", "a2", "c3acc", "a3", "c4acc", "a4", "c5acc", "a5",
                                           "c6acc", "a6"}));
  // Not planned on NHWC: c4 out of the set; its input a3 is still read by c5 (NHWC) but now also
  // by c4, which reads FP32 NCHW: a3 goes back to FP32 and with it c5's input -> c5 is dropped too
  // (it would reformat), and a4 / a5 / c6 follow.
  std::set<size_t> some = eligibleConvs(r.graph);
  for (size_t i = 0; i < r.graph.nodes.size(); ++i)
    if (r.graph.nodes[i].name == "c4") some.erase(i);
  l = gpu::planNhwcLayout(r.graph, some, roundFusedOf(r.graph));
  CHECK(convNames(r.graph, l.convs) == std::set<std::string>({"c0", "c1", "c2", "c3", "c7", "c8"}));
  CHECK(!l.values.count("a3") && !l.values.count("a5") && l.values.count("a2"));

  // MobileNet-like: stem -> depthwise -> 1x1 project -> 1x1 expand -> depthwise -> output. The
  // depthwise convolutions write FP32 NCHW, so the 1x1 convolutions would each reformat: none is
  // kept but the stem (graph input), and no value is NHWC.
  Plan m = emptyPlan(90, "fp16");
  Graph& g = m.graph;
  addInput(g, "x", {1, 3, 16, 16});
  g.initializers["w0"] = uniformFloats({16, 3, 3, 3}, 1);
  g.initializers["wd"] = uniformFloats({16, 1, 3, 3}, 2);
  g.initializers["w1"] = uniformFloats({24, 16, 1, 1}, 3);
  g.initializers["w2"] = uniformFloats({48, 24, 1, 1}, 4);
  g.initializers["we"] = uniformFloats({48, 1, 3, 3}, 5);
  auto add = [&](Node n, const std::string& rounded) { addRounded(g, std::move(n), rounded); };
  add(conv("stem", {"x", "w0"}, "s", "fp16", "HardSwish"), "sr");
  Node dw = conv("dw", {"sr", "wd"}, "d", "fp16");
  dw.attrs.values["group"] = intAttr(16);
  dw.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  add(dw, "dr");
  add(conv("project", {"dr", "w1"}, "p", "fp16"), "pr");
  add(conv("expand", {"pr", "w2"}, "e", "fp16", "HardSwish"), "er");
  Node dw2 = conv("dw2", {"er", "we"}, "d2", "fp16");
  dw2.attrs.values["group"] = intAttr(48);
  add(dw2, "out");
  g.outputs = {"out"};
  inferShapes(g);
  CHECK_EQ(eligibleConvs(g).size(), size_t(3));
  l = gpu::planNhwcLayout(g, eligibleConvs(g), roundFusedOf(g));
  CHECK(convNames(g, l.convs) == std::set<std::string>({"stem"}));
  CHECK(l.values.empty());
}

// ------------------------------------------------------------------ GPU side

TEST(gpu_nhwc_resnet_like_chain_matches_the_cpu_reference) {
  CHECK_EQ(runGraph(resnetLike(90, 2).graph, resnetInputs(2)).size(), size_t(3));  // the graph itself is valid
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  for (int batch : {1, 3}) {
    const gpu::GpuLayerStats st = expectMatches(resnetLike(dev.sm, batch), resnetInputs(batch));
    CHECK_EQ(st.nhwcLayers, kConvs);  // c8 too, on its own (reformat in, FP32 NCHW out)
    // s0 (+ its view), p0, a1..a6 and their convolution outputs: everything between stem and GAP.
    CHECK(st.nhwcValues >= 8);
    std::cerr << "  (batch " << batch << ": " << st.nhwcLayers << " NHWC convolutions, " << st.nhwcValues << " NHWC values, " << st.launches
              << " launches)\n";
  }
}

TEST(gpu_nhwc_every_tile_and_the_switch_off_match) {
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  for (const auto& t : gpu::nhwcConvTiles()) {
    Plan p = resnetLike(dev.sm, 2);
    gpu::prepareGpuPlan(p);
    for (auto& n : p.graph.nodes)
      if (gpu::nhwcConvEligible(p.graph, n)) n.tactic = t.tactic;
    p.header.tuned = true;
    gpu::GpuExecutor probe(p);
    const auto chosen = probe.chosenTactics(resnetInputs(2));
    CHECK_EQ(chosen.at("c3"), t.tactic);
    CHECK_EQ(chosen.at("c8"), t.tactic);
    CHECK_EQ(expectMatches(p, resnetInputs(2)).nhwcLayers, kConvs);
  }
  setenv("PLANFORGE_GPU_NHWC", "0", 1);
  gpu::GpuLayerStats off;
  try {
    off = expectMatches(resnetLike(dev.sm, 2), resnetInputs(2));
  } catch (...) {
    unsetenv("PLANFORGE_GPU_NHWC");
    throw;
  }
  unsetenv("PLANFORGE_GPU_NHWC");
  CHECK_EQ(off.nhwcLayers, 0);
  CHECK_EQ(off.nhwcValues, 0);
}

TEST(gpu_nhwc_autotune_keeps_connected_layers_in_nhwc) {
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  Plan p = resnetLike(dev.sm, 2);
  gpu::prepareGpuPlan(p);
  p.header.tuned = false;
  gpu::GpuExecutorOptions o;
  o.autotune = true;
  const gpu::GpuLayerStats st = expectMatches(p, resnetInputs(2), o);
  CHECK(st.tunedLayers >= kConvs);
  gpu::GpuExecutor ex(p, o);
  const auto chosen = ex.chosenTactics(resnetInputs(2));
  for (const char* c : {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}) CHECK(gpu::isNhwcConvTactic(chosen.at(c)));
  // c8 is next to no NHWC value: any candidate may win it.
  std::cerr << "  (c8 tuned to " << gpu::tacticName(chosen.at("c8")) << ")\n";
  // preferCublasLt (A/B runs) keeps every convolution off the NHWC path.
  gpu::GpuExecutorOptions lt;
  lt.preferCublasLt = true;
  CHECK_EQ(expectMatches(resnetLike(dev.sm, 2), resnetInputs(2), lt).nhwcLayers, 0);
}

// 1 x 1 stride-1 convolutions inside an NHWC chain as one cuBLASLt GEMM (kTacticConvNhwcCublasLt).
TEST(gpu_nhwc_cublaslt_tactic_eligibility_and_fallback) {
  CHECK_EQ(int64_t(gpu::kTacticConvNhwcCublasLt), int64_t(19));  // stored in plans and timing caches: never renumber
  CHECK(gpu::isNhwcConvTactic(gpu::kTacticConvNhwcCublasLt) && !gpu::isNhwcGemmTactic(gpu::kTacticConvNhwcCublasLt));
  CHECK(gpu::isCublasLtTactic(gpu::kTacticConvNhwcCublasLt) && gpu::isCublasLtF16Tactic(gpu::kTacticConvNhwcCublasLt));
  CHECK(gpu::nhwcConvTile(gpu::kTacticConvNhwcCublasLt) == nullptr);
  CHECK_EQ(std::string(gpu::tacticName(gpu::kTacticConvNhwcCublasLt)), std::string("conv_nhwc_cublaslt_f16"));
  const Plan p = resnetLike(90, 1);
  const Graph& g = p.graph;
  std::set<std::string> eligible;
  for (const auto& n : g.nodes) {
    if (gpu::nhwcCublasLtConvEligible(g, n)) eligible.insert(n.name);
    const auto c = gpu::candidateTactics(g, n);
    CHECK(std::find(c.begin(), c.end(), int64_t(gpu::kTacticConvNhwcCublasLt)) == c.end());  // never a heuristic choice
    const auto tuned = gpu::tuningCandidates(g, n, true);
    CHECK_EQ(std::find(tuned.begin(), tuned.end(), int64_t(gpu::kTacticConvNhwcCublasLt)) != tuned.end(), eligible.count(n.name) != 0);
    const auto absent = gpu::tuningCandidates(g, n, false);
    CHECK(std::find(absent.begin(), absent.end(), int64_t(gpu::kTacticConvNhwcCublasLt)) == absent.end());
  }
  // c1 (ReLU), c3 (residual + ReLU), c5 (stride 2), c7 (no activation); not the 3 x 3 ones.
  CHECK(eligible == std::set<std::string>({"c1", "c3", "c5", "c7"}));
  Node c = g.nodes[0];
  for (const auto& n : g.nodes)
    if (n.name == "c3") c = n;
  bool fellBack = false;
  CHECK_EQ(gpu::runtimeTactic(g, c, gpu::kTacticConvNhwcCublasLt, true, &fellBack), int64_t(gpu::kTacticConvNhwcCublasLt));
  CHECK(!fellBack);
  CHECK_EQ(gpu::runtimeTactic(g, c, gpu::kTacticConvNhwcCublasLt, false, &fellBack), gpu::heuristicTactic(g, c));  // library missing
  CHECK(fellBack);
  Node other = c;
  other.attrs.values["activation"] = stringAttr("HardSwish");  // not among cuBLASLt's epilogues
  CHECK(!gpu::nhwcCublasLtConvEligible(g, other) && gpu::nhwcConvEligible(g, other));
  other = c;
  other.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  CHECK(!gpu::nhwcCublasLtConvEligible(g, other));
  Graph h = g;
  h.initializers["w3"] = uniformFloats({16, 40, 3, 3}, 3);
  CHECK(!gpu::nhwcCublasLtConvEligible(h, c));
  CHECK_EQ(gpu::runtimeTactic(h, c, gpu::kTacticConvNhwcCublasLt, true), gpu::heuristicTactic(h, c));
  // Through plan serialization.
  Plan q = p;
  for (auto& n : q.graph.nodes) n.tactic = gpu::nhwcCublasLtConvEligible(q.graph, n) ? gpu::kTacticConvNhwcCublasLt : gpu::heuristicTactic(q.graph, n);
  q.header.tuned = true;
  const std::vector<uint8_t> bytes = serializePlan(q);
  const Plan r = parsePlan(bytes.data(), bytes.size());
  for (size_t i = 0; i < q.graph.nodes.size(); ++i) CHECK_EQ(r.graph.nodes[i].tactic, q.graph.nodes[i].tactic);
}

TEST(gpu_nhwc_cublaslt_convolutions_match_the_cpu_reference) {
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev) || !gpu::cublasLtAvailable()) return;
  for (bool present : {true, false}) {
    Plan p = resnetLike(dev.sm, 3);
    gpu::prepareGpuPlan(p);
    for (auto& n : p.graph.nodes)
      if (gpu::nhwcCublasLtConvEligible(p.graph, n)) n.tactic = gpu::kTacticConvNhwcCublasLt;
    p.header.tuned = true;
    gpu::setCublasLtDisabledForTesting(!present);
    try {
      gpu::GpuExecutor probe(p);
      const auto chosen = probe.chosenTactics(resnetInputs(3));
      // c1, c3 (with the pool output as residual) and c5 (stride 2: packed first) are chain members;
      // c7 writes an FP32 NCHW graph output, so it runs on a tile (the heuristic's) instead, as
      // everything does without the library.
      CHECK_EQ(chosen.at("c1"), present ? int64_t(gpu::kTacticConvNhwcCublasLt) : int64_t(gpu::kTacticConvNhwc128x128));
      CHECK_EQ(chosen.at("c3") == gpu::kTacticConvNhwcCublasLt, present);
      CHECK_EQ(chosen.at("c5") == gpu::kTacticConvNhwcCublasLt, present);
      CHECK(gpu::isNhwcConvTactic(chosen.at("c7")) && chosen.at("c7") != gpu::kTacticConvNhwcCublasLt);
      const gpu::GpuLayerStats st = expectMatches(p, resnetInputs(3));
      CHECK_EQ(st.nhwcLayers, kConvs);
      CHECK_EQ(st.cublasLtLayers, present ? 3 : 0);
    } catch (...) {
      gpu::setCublasLtDisabledForTesting(false);
      throw;
    }
    gpu::setCublasLtDisabledForTesting(false);
  }
}

// The untuned plans' tile choice: deterministic, big grids on big tiles, small grids split K.
TEST(gpu_nhwc_heuristic_tile_and_split_k) {
  const long long big[3] = {256LL * 56 * 56, 256, 64}, small[3] = {49, 512, 9 * 512};  // ResNet-50 bs256 layer1 / bs1 layer4
  const int64_t a = gpu::nhwcHeuristicTile(big[0], big[1], big[2], 90, 132);
  CHECK_EQ(a, gpu::nhwcHeuristicTile(big[0], big[1], big[2], 90, 132));
  CHECK(a == gpu::kTacticConvNhwc256x128 || a == gpu::kTacticConvNhwc128x128);
  const int64_t b = gpu::nhwcHeuristicTile(small[0], small[1], small[2], 90, 132);
  int per = 0;
  const int splits = gpu::nhwcSplits(*gpu::nhwcConvTile(b), small[0], small[1], small[2], 132, &per);
  CHECK(splits > 1);
  CHECK(splits * per >= (small[2] + 31) / 32 && (splits - 1) * per < (small[2] + 31) / 32);  // every K tile in one slice
  CHECK_EQ(gpu::nhwcSplits(*gpu::nhwcConvTile(a), big[0], big[1], big[2], 132, &per), 1);  // big grids never split
  CHECK_EQ(per, 2);
  for (const auto& t : gpu::nhwcConvTiles())
    for (int sm : {80, 86, 87, 90}) CHECK(gpu::nhwcBlocksPerSm(t, sm) >= 1);
  std::cerr << "  (heuristic: layer1 bs256 " << gpu::tacticName(a) << ", layer4 bs1 " << gpu::tacticName(b) << " x" << splits << ")\n";
}

// Hopper's wgmma tiles (kTacticConvNhwcWgmma*, kernels/conv_nhwc_wgmma.cuh) on a chain with 64 / 128
// channels: c0 1x1 reads the FP32 graph input (reformat in: not a chain member's input), c1 3x3
// 64 -> 128 ReLU, c2 3x3/2 128 -> 64, c3 3x3 64 -> 64 + residual (c2's output) ReLU, c4 3x3 dilation 2
// 64 -> 128 HardSwish, c5 1x1 128 -> 64, c6 3x3 64 -> 72 ReLU (a partial column tile), c8 1x1 72 -> 16
// (72 channels: not eligible) -> GAP; c7 3x3 128 -> 16 writes a graph output (FP32 NCHW: not a member).
Plan wgmmaChain(int sm, int batch) {
  const std::string pr = "fp16";
  Plan p = emptyPlan(sm, pr);
  Graph& g = p.graph;
  addInput(g, "x", {batch, 64, 14, 14});
  const std::vector<std::pair<std::string, Shape>> ws{{"w0", {64, 64, 1, 1}},  {"w1", {128, 64, 3, 3}}, {"w2", {64, 128, 3, 3}},
                                                      {"w3", {64, 64, 3, 3}},  {"w4", {128, 64, 3, 3}}, {"w5", {64, 128, 1, 1}},
                                                      {"w6", {72, 64, 3, 3}},  {"w7", {16, 128, 3, 3}}, {"w8", {16, 72, 1, 1}}};
  uint32_t seed = 1700;
  for (const auto& w : ws) {
    g.initializers[w.first] = fanInScaled(w.second, ++seed);
    g.initializers["b" + w.first.substr(1)] = uniformFloats({w.second[0]}, ++seed);
  }
  auto add = [&](Node n, const std::string& rounded) { addRounded(g, std::move(n), rounded); };
  auto pads = [](Node n, int64_t v) {
    n.attrs.values["pads"] = intsAttr({v, v, v, v});
    return n;
  };
  add(conv("c0", {"x", "w0", "b0"}, "c0acc", pr, "Relu"), "a0");
  add(pads(conv("c1", {"a0", "w1", "b1"}, "c1acc", pr, "Relu"), 1), "a1");
  Node c2 = pads(conv("c2", {"a1", "w2", "b2"}, "c2acc", pr), 1);
  c2.attrs.values["strides"] = intsAttr({2, 2});
  add(c2, "a2");
  add(pads(conv("c3", {"a2", "w3", "b3", "a2"}, "c3acc", pr, "Relu"), 1), "a3");
  Node c4 = pads(conv("c4", {"a3", "w4", "b4"}, "c4acc", pr, "HardSwish"), 2);
  c4.attrs.values["dilations"] = intsAttr({2, 2});
  add(c4, "a4");
  add(conv("c5", {"a4", "w5", "b5"}, "c5acc", pr), "a5");
  add(pads(conv("c6", {"a5", "w6", "b6"}, "c6acc", pr, "Relu"), 1), "a6");
  add(conv("c8", {"a6", "w8", "b8"}, "c8acc", pr), "a8");
  g.nodes.push_back(node("GlobalAveragePool", "gap", {"a8"}, {"pooled"}));
  add(pads(conv("c7", {"a4", "w7", "b7"}, "c7acc", pr), 1), "side");
  g.outputs = {"pooled", "side"};
  inferShapes(g);
  return p;
}

TEST(gpu_nhwc_wgmma_tactics_eligibility_and_cubins) {
  CHECK_EQ(int64_t(gpu::kTacticConvNhwcWgmma128x128), int64_t(40));  // stored in plans and timing caches: never renumber
  CHECK_EQ(int64_t(gpu::kTacticConvNhwcWgmma128x64), int64_t(41));
  CHECK_EQ(std::string(gpu::tacticName(40)), std::string("conv_nhwc_wgmma_f16_128x128"));
  CHECK_EQ(std::string(gpu::tacticName(41)), std::string("conv_nhwc_wgmma_f16_128x64"));
  CHECK_EQ(std::string(gpu::tacticName(42)), std::string("conv_nhwc_wgmma_f16_128x128_overlap"));
  CHECK_EQ(std::string(gpu::tacticName(43)), std::string("conv_nhwc_wgmma_f16_128x64_overlap"));
  CHECK_EQ(gpu::nhwcWgmmaTiles().size(), size_t(4));
  for (const auto& t : gpu::nhwcWgmmaTiles()) {
    CHECK(gpu::isNhwcConvTactic(t.tactic) && !gpu::isNhwcGemmTactic(t.tactic) && !gpu::isCublasLtTactic(t.tactic));
    CHECK(gpu::nhwcConvTile(t.tactic) == nullptr && gpu::nhwcWgmmaTile(t.tactic) == &t);
    CHECK(t.threads == 256 && t.bm == 128 && (t.bn == 64 || t.bn == 128));
    CHECK(t.blocksPerSm * (t.sharedBytes() + 1024) <= 228 * 1024 && t.sharedBytes() <= 227 * 1024);  // fits a Hopper SM
    CHECK(t.stages - (t.overlap ? 2 : 1) >= 1);  // tiles in flight ahead of the computed one
    CHECK(128 * (t.bn + 8) * 2 <= t.stages * (t.bm + t.bn) * 128);  // the staged output tile fits
  }
  const Plan p = wgmmaChain(90, 2);
  const Graph& g = p.graph;
  std::set<std::string> eligible;
  for (const auto& n : g.nodes) {
    if (gpu::nhwcWgmmaConvEligible(g, n)) eligible.insert(n.name);
    const auto c = gpu::candidateTactics(g, n);
    CHECK(std::find(c.begin(), c.end(), int64_t(40)) == c.end());  // never a heuristic choice
    const auto tuned = gpu::tuningCandidates(g, n, false);
    CHECK_EQ(std::find(tuned.begin(), tuned.end(), int64_t(40)) != tuned.end(), eligible.count(n.name) != 0);
    CHECK_EQ(std::find(tuned.begin(), tuned.end(), int64_t(41)) != tuned.end(), eligible.count(n.name) != 0);
    if (eligible.count(n.name)) {
      CHECK_EQ(gpu::runtimeTactic(g, n, 41, false), int64_t(41));
    } else if (gpu::nhwcConvEligible(g, n)) {
      CHECK_EQ(gpu::runtimeTactic(g, n, 41, false), gpu::heuristicTactic(g, n));
    }
  }
  // Input channels a multiple of 64 (c6 has 72 output channels: fine; c8 reads 72: no).
  CHECK(eligible == std::set<std::string>({"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}));
  // Through plan serialization.
  Plan q = p;
  for (auto& n : q.graph.nodes) n.tactic = gpu::nhwcWgmmaConvEligible(q.graph, n) ? int64_t(40) : gpu::heuristicTactic(q.graph, n);
  q.header.tuned = true;
  const std::vector<uint8_t> bytes = serializePlan(q);
  const Plan r = parsePlan(bytes.data(), bytes.size());
  for (size_t i = 0; i < q.graph.nodes.size(); ++i) CHECK_EQ(r.graph.nodes[i].tactic, q.graph.nodes[i].tactic);
  // Only the sm_90 cubin (built as sm_90a) has the kernels; its ELF header still says SM 90.
  const auto& cubins = gpu::embeddedCubins();
  if (cubins.empty()) return;  // built without nvcc
  for (const auto& c : cubins) {
    const std::string image(reinterpret_cast<const char*>(c.data), c.size);
    CHECK_EQ(gpu::cubinSm(c.data, c.size), c.sm);
    for (const auto& t : gpu::nhwcWgmmaTiles()) CHECK_EQ(image.find(t.kernel) != std::string::npos, c.sm == 90);
  }
}

TEST(gpu_nhwc_wgmma_convolutions_match_the_cpu_reference) {
  CHECK_EQ(runGraph(wgmmaChain(90, 1).graph, {{"x", uniformFloats({1, 64, 14, 14}, 81)}}).size(), size_t(2));  // the graph is valid
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  {  // Opt-in for now (PLANFORGE_GPU_WGMMA=1): without it the layers run on the tiles.
    Plan p = wgmmaChain(dev.sm, 2);
    gpu::prepareGpuPlan(p);
    for (auto& n : p.graph.nodes)
      if (gpu::nhwcWgmmaConvEligible(p.graph, n)) n.tactic = gpu::kTacticConvNhwcWgmma128x128;
    p.header.tuned = true;
    unsetenv("PLANFORGE_GPU_WGMMA");
    gpu::GpuExecutor probe(p);
    for (const auto& c : probe.chosenTactics({{"x", uniformFloats({2, 64, 14, 14}, 82)}}))
      CHECK(gpu::nhwcWgmmaTile(c.second) == nullptr);
  }
  setenv("PLANFORGE_GPU_WGMMA", "1", 1);
  struct SwitchOff {
    ~SwitchOff() { unsetenv("PLANFORGE_GPU_WGMMA"); }
  } switchOff;
  for (const auto& t : gpu::nhwcWgmmaTiles())
    for (int batch : {1, 3}) {
      Plan p = wgmmaChain(dev.sm, batch);
      gpu::prepareGpuPlan(p);
      for (auto& n : p.graph.nodes)
        if (gpu::nhwcWgmmaConvEligible(p.graph, n)) n.tactic = t.tactic;
      p.header.tuned = true;
      const std::map<std::string, Tensor> in{{"x", uniformFloats({batch, 64, 14, 14}, 80 + batch)}};
      gpu::GpuExecutor probe(p);
      const auto chosen = probe.chosenTactics(in);
      // Chain members (FP16 NHWC in and out) on the wgmma tile where the GPU is Hopper; c0 reads the
      // FP32 graph input and c7 writes a graph output: a tile (the heuristic's) instead, as
      // everything does on other GPUs.
      for (const char* c : {"c1", "c2", "c3", "c4", "c5", "c6"}) CHECK_EQ(chosen.at(c) == t.tactic, dev.sm == 90);
      for (const char* c : {"c0", "c7", "c8"}) CHECK(gpu::nhwcConvTile(chosen.at(c)) != nullptr);
      const gpu::GpuLayerStats st = expectMatches(p, in);
      CHECK_EQ(st.nhwcLayers, 9);
      std::cerr << "  (" << gpu::tacticName(t.tactic) << " batch " << batch << ": " << st.launches << " launches)\n";
    }
}

// One wgmma layer seen directly: pre (1x1 C -> C, reads the FP32 graph input: a tile) -> mid (the case,
// a chain member: wgmma) -> post (1x1 Co -> Co identity weights, writes the graph output: a tile), so
// the output is mid's output exactly (FP16 values) and a mismatch names mid's (n, co, oh, ow).
Plan wgmmaSingleLayer(int sm, int batch, int64_t C, int64_t Co, int64_t k, int64_t stride, int64_t hw) {
  const std::string pr = "fp16";
  Plan p = emptyPlan(sm, pr);
  Graph& g = p.graph;
  addInput(g, "x", {batch, C, hw, hw});
  g.initializers["wpre"] = fanInScaled({C, C, 1, 1}, 31);
  g.initializers["bpre"] = uniformFloats({C}, 32);
  g.initializers["wmid"] = fanInScaled({Co, C, k, k}, 33);
  g.initializers["bmid"] = uniformFloats({Co}, 34);
  Tensor eye(DataType::kFloat, {Co, Co, 1, 1});
  for (int64_t i = 0; i < eye.numel(); ++i) eye.data<float>()[i] = 0.f;
  for (int64_t i = 0; i < Co; ++i) eye.data<float>()[i * Co + i] = 1.f;
  g.initializers["wpost"] = eye;
  auto add = [&](Node n, const std::string& rounded) { addRounded(g, std::move(n), rounded); };
  add(conv("pre", {"x", "wpre", "bpre"}, "preacc", pr, "Relu"), "a0");
  Node mid = conv("mid", {"a0", "wmid", "bmid"}, "midacc", pr);
  mid.attrs.values["strides"] = intsAttr({stride, stride});
  mid.attrs.values["pads"] = intsAttr({k / 2, k / 2, k / 2, k / 2});
  add(mid, "a1");
  add(conv("post", {"a1", "wpost"}, "postacc", pr), "y");
  g.outputs = {"y"};
  inferShapes(g);
  return p;
}

// Where a wgmma layer's output differs from the CPU reference: how many values, the first one, and how
// the bad ones spread over output channels and pixels modulo 8 (a swizzle or fragment-layout mistake
// shows as a pattern there).
std::string wgmmaMismatchPattern(const Tensor& got, const Tensor& want, double tol) {
  double scale = 1e-6;
  for (int64_t i = 0; i < want.numel(); ++i) scale = std::max(scale, std::fabs(want.getDouble(i)));
  const int64_t C = want.shape[1], HW = want.shape[2] * want.shape[3];
  int64_t bad = 0, first = -1;
  int64_t byChannel[8] = {0}, byPixel[8] = {0};
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double d = std::fabs(got.getDouble(i) - want.getDouble(i));
    if (!(d <= tol * scale)) {
      if (first < 0) first = i;
      ++bad;
      const int64_t c = (i / HW) % C, n = i / (HW * C), pix = n * HW + i % HW;
      ++byChannel[c % 8];
      ++byPixel[pix % 8];
    }
  }
  if (!bad) return "";
  std::ostringstream o;
  const int64_t c = (first / HW) % C, n = first / (HW * C), q = first % HW;
  o << bad << " of " << want.numel() << " values differ; first (n " << n << ", co " << c << ", oh " << q / want.shape[3] << ", ow "
    << q % want.shape[3] << "): got " << got.getDouble(first) << ", want " << want.getDouble(first) << "; by co % 8:";
  for (int64_t v : byChannel) o << ' ' << v;
  o << "; by pixel % 8:";
  for (int64_t v : byPixel) o << ' ' << v;
  return o.str();
}

TEST(gpu_nhwc_wgmma_single_layers_match_the_cpu_reference) {
  {  // The graph is valid, and the identity post layer passes mid's output through.
    const Plan p = wgmmaSingleLayer(90, 1, 64, 72, 3, 1, 9);
    const std::map<std::string, Tensor> in{{"x", uniformFloats({1, 64, 9, 9}, 91)}};
    Graph upToMid = p.graph;
    upToMid.outputs = {"a1"};
    CHECK(maxRelErr(runGraph(p.graph, in).at("y"), runGraph(upToMid, in).at("a1")) == 0.0);
  }
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev) || dev.sm != 90) return;
  setenv("PLANFORGE_GPU_WGMMA", "1", 1);
  struct SwitchOff {
    ~SwitchOff() { unsetenv("PLANFORGE_GPU_WGMMA"); }
  } switchOff;
  struct Case {
    int64_t C, Co, k, stride, hw;
  };
  // 1x1 (one K tile, two K tiles), 3x3 (9 / 18 K tiles, padding), strided, a partial column tile.
  const std::vector<Case> cases{{64, 64, 1, 1, 12}, {128, 128, 1, 1, 12}, {64, 128, 3, 1, 12}, {128, 64, 3, 2, 13}, {64, 72, 3, 1, 9}};
  int failures = 0;
  for (const auto& t : gpu::nhwcWgmmaTiles())
    for (const Case& c : cases) {
      Plan p = wgmmaSingleLayer(dev.sm, 2, c.C, c.Co, c.k, c.stride, c.hw);
      gpu::prepareGpuPlan(p);
      for (auto& n : p.graph.nodes)
        if (n.name == "mid") n.tactic = t.tactic;
      p.header.tuned = true;
      const std::map<std::string, Tensor> in{{"x", uniformFloats({2, c.C, c.hw, c.hw}, 91)}};
      const auto want = runGraph(p.graph, in);
      gpu::GpuExecutor ex(p);
      CHECK_EQ(ex.chosenTactics(in).at("mid"), t.tactic);
      const auto got = ex.run(in);
      const std::string pattern = wgmmaMismatchPattern(got.at("y"), want.at("y"), 2e-2);
      if (!pattern.empty()) {
        ++failures;
        std::cerr << "  " << gpu::tacticName(t.tactic) << " C " << c.C << " Co " << c.Co << " " << c.k << "x" << c.k << "/" << c.stride
                  << ": " << pattern << "\n";
      }
    }
  CHECK_EQ(failures, 0);
}

// GEMMs on the NHWC kernels (a 1 x 1 convolution over the rows): Gemm with bias, Gemm with transB,
// FusedGemm with ReLU + residual, a batched-rows FusedMatMul with erf-GELU, and an FC layer with a
// long K (split-K at one row).
Plan nhwcGemmPlan(int sm, const std::string& pr) {
  Plan p = emptyPlan(sm, pr);
  Graph& g = p.graph;
  addInput(g, "a", {6, 40});
  addInput(g, "x3", {2, 7, 24});
  addInput(g, "f", {1, 2048});
  g.initializers["w1"] = uniformFloats({40, 32}, 801);
  g.initializers["b1"] = uniformFloats({32}, 802);
  g.initializers["w2"] = uniformFloats({32, 40}, 803);
  g.initializers["w3"] = uniformFloats({24, 48}, 804);
  g.initializers["b3"] = uniformFloats({48}, 805);
  g.initializers["wf"] = uniformFloats({2048, 1000}, 806);
  g.initializers["bf"] = uniformFloats({1000}, 807);
  auto gemm = [&](const std::string& op, const std::string& name, std::vector<std::string> ins, const std::string& out) {
    Node n = node(op, name, std::move(ins), {out});
    if (op.rfind("Fused", 0) == 0) n.domain = "planforge";
    n.precision = pr;
    return n;
  };
  g.nodes.push_back(gemm("Gemm", "g1", {"a", "w1", "b1"}, "y1"));
  Node g2 = gemm("Gemm", "g2", {"a", "w2"}, "y2");
  g2.attrs.values["transB"] = intAttr(1);
  g.nodes.push_back(g2);
  Node g3 = gemm("FusedGemm", "g3", {"a", "w1", "b1", "y1"}, "y3");
  g3.attrs.values["activation"] = stringAttr("Relu");
  g.nodes.push_back(g3);
  Node m1 = gemm("FusedMatMul", "m1", {"x3", "w3", "b3"}, "y4");
  m1.attrs.values["activation"] = stringAttr("Gelu");
  g.nodes.push_back(m1);
  g.nodes.push_back(gemm("Gemm", "fc", {"f", "wf", "bf"}, "y5"));
  g.outputs = {"y1", "y2", "y3", "y4", "y5"};
  inferShapes(g);
  return p;
}
std::map<std::string, Tensor> nhwcGemmInputs() {
  return {{"a", uniformFloats({6, 40}, 811)}, {"x3", uniformFloats({2, 7, 24}, 812)}, {"f", uniformFloats({1, 2048}, 813)}};
}
constexpr int kNhwcGemms = 5;

TEST(gpu_nhwc_gemm_eligibility_and_tactics) {
  const Plan p = nhwcGemmPlan(90, "fp16");
  const Graph& g = p.graph;
  for (const auto& n : g.nodes) {
    CHECK(gpu::nhwcGemmEligible(g, n));
    CHECK_EQ(gpu::heuristicTactic(g, n), int64_t(gpu::kTacticGemmNhwc128x128));
  }
  CHECK(!gpu::nhwcGemmEligible(nhwcGemmPlan(90, "fp32").graph, nhwcGemmPlan(90, "fp32").graph.nodes[0]));
  Node n = g.nodes[0];
  Graph h = g;
  n.attrs.values["transA"] = intAttr(1);
  CHECK(!gpu::nhwcGemmEligible(h, n));
  n.attrs.values.erase("transA");
  n.attrs.values["alpha"] = floatAttr(0.5f);
  CHECK(!gpu::nhwcGemmEligible(h, n));
  n.attrs.values.erase("alpha");
  h.initializers["w1"] = uniformFloats({40, 33}, 1);  // N not a multiple of 8
  CHECK(!gpu::nhwcGemmEligible(h, n));
  h = g;
  h.initializers.erase("b1");  // a bias computed at run time (an attention mask): not a bias of N values
  CHECK(!gpu::nhwcGemmEligible(h, n));
  for (const auto& t : gpu::nhwcConvTiles()) {
    CHECK(gpu::isNhwcGemmTactic(t.gemmTactic) && !gpu::isNhwcConvTactic(t.gemmTactic));
    CHECK(gpu::isNhwcConvTactic(t.tactic) && !gpu::isNhwcGemmTactic(t.tactic));
    CHECK_EQ(gpu::nhwcConvTile(t.gemmTactic), &t);
  }
  CHECK_EQ(std::string(gpu::tacticName(gpu::kTacticGemmNhwc64x64)), std::string("gemm_nhwc_f16_64x64"));
}

TEST(gpu_nhwc_gemms_match_the_cpu_reference) {
  CHECK_EQ(runGraph(nhwcGemmPlan(90, "fp16").graph, nhwcGemmInputs()).size(), size_t(kNhwcGemms));
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  CHECK_EQ(expectMatches(nhwcGemmPlan(dev.sm, "fp16"), nhwcGemmInputs()).nhwcLayers, kNhwcGemms);
  for (const auto& t : gpu::nhwcConvTiles()) {
    Plan p = nhwcGemmPlan(dev.sm, "fp16");
    gpu::prepareGpuPlan(p);
    for (auto& n : p.graph.nodes) n.tactic = t.gemmTactic;
    p.header.tuned = true;
    const gpu::GpuLayerStats st = expectMatches(p, nhwcGemmInputs());
    CHECK_EQ(st.nhwcLayers, kNhwcGemms);
    CHECK(st.tactics.find(gpu::tacticName(t.gemmTactic)) != std::string::npos);
  }
  gpu::GpuExecutorOptions o;
  o.autotune = true;
  const gpu::GpuLayerStats st = expectMatches(nhwcGemmPlan(dev.sm, "fp16"), nhwcGemmInputs(), o);
  std::cerr << "  (GEMMs autotuned: " << st.tactics << ")\n";
}
