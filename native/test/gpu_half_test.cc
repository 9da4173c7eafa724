// FP16 activations of the transformer path (src/core/gpu/half_layout.h): which values of a BERT-like
// FP16 plan are stored as FP16 (CPU side), and the plan on the GPU against the CPU reference with
// them on and off (PLANFORGE_GPU_HALF=0).
#include <cstdlib>

#include "core/gpu/cuda_driver.h"
#include "core/gpu/cubin.h"
#include "core/gpu/device.h"
#include "core/gpu/half_layout.h"
#include "core/precision/fp16.h"
#include "fusion_test_util.h"
#include "gpu_test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

constexpr int64_t kHidden = 128, kHeads = 2, kFfn = 256;

Node fp16(Node n) {
  n.precision = "fp16";
  return n;
}

Node fusedMatMul(const std::string& name, const std::string& a, const std::string& w, const std::string& b, const std::string& y,
                 const std::string& residual = "", const std::string& act = "") {
  Node n = node("FusedMatMul", name, {a, w, b}, {y});
  n.domain = "planforge";
  if (!residual.empty()) n.inputs.push_back(residual);
  if (!act.empty()) n.attrs.values["activation"] = stringAttr(act);
  return fp16(n);
}

Node layerNorm(const std::string& name, const std::string& x, const std::string& y) {
  Node n = node("LayerNormalization", name, {x, "ln_g", "ln_b"}, {y});
  n.attrs.values["axis"] = intAttr(-1);
  return fp16(n);
}

// Two BERT encoder layers after fuse_attention / fuse_gemm_bias_activation, lowered to FP16 like the
// precision pass does (a RoundToFp16 after every layer): x -> LN -> [Q, K, V] -> FusedAttention ->
// dense + residual -> LN -> FFN (GELU) -> dense + residual -> LN, twice; the last LN is the output.
// withReader adds a Softmax over the first LN's output (a reader that cannot take FP16).
Plan bertLike(int sm, int64_t batch, int64_t seq, bool withReader = false) {
  Plan p = emptyPlan(sm, "fp16");
  Graph& g = p.graph;
  addInput(g, "x", {batch, seq, kHidden});
  addConst(g, "ln_g", seeded({kHidden}, 1, 0.2f, 1.f));
  addConst(g, "ln_b", seeded({kHidden}, 2, 0.2f));
  g.nodes.push_back(layerNorm("ln0", "x", "h0"));
  std::string h = "h0";
  uint32_t seed = 10;
  for (int layer = 0; layer < 2; ++layer) {
    const std::string L = "l" + std::to_string(layer) + "_";
    auto weight = [&](const std::string& name, int64_t k, int64_t n) {
      addConst(g, L + name, seeded({k, n}, seed++, 0.09f));
      addConst(g, L + name + "_b", seeded({n}, seed++, 0.1f));
    };
    for (const char* w : {"q", "k", "v", "o"}) weight(w, kHidden, kHidden);
    weight("f1", kHidden, kFfn);
    weight("f2", kFfn, kHidden);
    for (const char* w : {"q", "k", "v"}) g.nodes.push_back(fusedMatMul(L + w, h, L + w, L + w + "_b", L + w + "_y"));
    Node att = node("FusedAttention", L + "attention", {L + "q_y", L + "k_y", L + "v_y"}, {L + "att"});
    att.domain = "planforge";
    att.attrs.values["num_heads"] = intAttr(kHeads);
    att.attrs.values["scale"] = floatAttr(0.125f);
    g.nodes.push_back(fp16(att));
    g.nodes.push_back(fusedMatMul(L + "o", L + "att", L + "o", L + "o_b", L + "o_y", h));
    g.nodes.push_back(layerNorm(L + "ln1", L + "o_y", L + "h1"));
    g.nodes.push_back(fusedMatMul(L + "f1", L + "h1", L + "f1", L + "f1_b", L + "f1_y", "", "Gelu"));
    g.nodes.push_back(fusedMatMul(L + "f2", L + "f1_y", L + "f2", L + "f2_b", L + "f2_y", L + "h1"));
    g.nodes.push_back(layerNorm(L + "ln2", L + "f2_y", L + "h2"));
    h = L + "h2";
  }
  g.outputs = {h};
  if (withReader) {
    g.nodes.push_back(fp16(node("Softmax", "reader", {"h0"}, {"sm"})));
    g.outputs.push_back("sm");
  }
  inferShapes(g);
  std::vector<std::string> changes;
  lowerFp16Layers(g, changes);
  return p;
}

// What the executor folds: every layer whose one reader is its RoundToFp16.
std::set<size_t> foldedRounds(const Graph& g) {
  std::set<size_t> out;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].outputs.size() != 1 || g.nodes[i].opType == "RoundToFp16") continue;
    int readers = 0;
    bool round = false;
    for (const auto& n : g.nodes)
      for (const auto& in : n.inputs)
        if (in == g.nodes[i].outputs[0]) {
          ++readers;
          round = n.opType == "RoundToFp16";
        }
    if (readers == 1 && round) out.insert(i);
  }
  return out;
}

}  // namespace

TEST(half_layout_covers_the_transformer_path) {
  Plan p = bertLike(90, 2, 16);
  const Graph& g = p.graph;
  const gpu::HalfLayout l = gpu::planHalfLayout(g, foldedRounds(g));
  size_t gemms = 0;
  for (const auto& n : g.nodes) gemms += n.opType == "FusedMatMul";
  CHECK_EQ(gemms, 12u);
  CHECK_EQ(l.gemms.size(), 12u);  // every GEMM reads and / or writes FP16
  // Every layer but the last LayerNorm writes FP16 (raw output + its folded rounding): 12 GEMMs,
  // 2 attentions, 4 LayerNorms.
  CHECK_EQ(l.values.size(), 2u * (12 + 2 + 4));
  CHECK(l.values.count("h0") == 1);
  CHECK(l.values.count("l0_att") == 1);
  CHECK(l.values.count("l1_f1_y") == 1);
  CHECK(l.values.count("l1_h2") == 0);  // the graph output
  CHECK(l.values.count("x") == 0);
}

TEST(half_layout_keeps_values_with_other_readers_in_fp32) {
  Plan p = bertLike(90, 2, 16, /*withReader=*/true);
  const Graph& g = p.graph;
  const gpu::HalfLayout l = gpu::planHalfLayout(g, foldedRounds(g));
  // h0 has a Softmax reader: FP32. Then l0's output dense GEMM (residual h0 in cuBLASLt's C, which
  // has the output's type) writes FP32 too, and its LayerNorm reads FP32.
  CHECK(l.values.count("h0") == 0);
  CHECK(l.values.count("l0_o_y") == 0);
  CHECK(l.values.count("l0_q_y") == 1);
  CHECK(l.values.count("l0_h1") == 1);
  CHECK(l.values.count("l1_h2") == 0);
}

// On the GPU: the same outputs as the CPU reference with FP16 activations and without, fewer
// launches with them (no casts, no rounding passes), the FP16 values counted.
TEST(gpu_half_activations_match_the_cpu_reference) {
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  for (int64_t batch : {1, 3}) {
    const std::map<std::string, Tensor> in{{"x", seeded({batch, 77, kHidden}, 5)}};
    gpu::GpuExecutorOptions o;
    o.preferCublasLt = o.preferCublasLtF16 = true;
    const gpu::GpuLayerStats on = matchCpu(bertLike(dev.sm, batch, 77), in, 3e-2, o);
    setenv("PLANFORGE_GPU_HALF", "0", 1);
    const gpu::GpuLayerStats off = matchCpu(bertLike(dev.sm, batch, 77), in, 3e-2, o);
    unsetenv("PLANFORGE_GPU_HALF");
    CHECK_EQ(off.halfValues, 0);
    CHECK_EQ(on.halfValues, 2 * 18);  // each FP16 value and its rounded view
    CHECK(on.launches < off.launches);
    // Plain plans (no cuBLASLt preference) take the same path: the GEMMs on cuBLASLt FP16.
    const gpu::GpuLayerStats plain = matchCpu(bertLike(dev.sm, batch, 77), in, 3e-2, {});
    CHECK_EQ(plain.halfValues, on.halfValues);
    CHECK_EQ(plain.launches, on.launches);
    std::cerr << "  (batch " << batch << ": " << on.launches << " launches with FP16 activations, " << off.launches << " without)\n";
  }
}
