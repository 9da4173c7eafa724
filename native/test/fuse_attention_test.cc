// fuse_attention (the pass), planforge.FusedAttention (the CPU reference) and its GPU kernels
// (tensor-core FP16 for head sizes 32 / 64 / 128, FP32 SIMT otherwise) against that reference.
#include <cmath>
#include <limits>

#include "core/gpu/cuda_driver.h"
#include "core/gpu/cubin.h"
#include "core/gpu/device.h"
#include "core/precision/fp16.h"
#include "fusion_test_util.h"
#include "gpu_test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

enum class Scale { kNone, kDiv, kSdpa };

struct AttentionOptions {
  int64_t batch = 2, sq = 5, skv = 7, heads = 2, headDim = 4;
  Scale scale = Scale::kDiv;
  bool mask = true, nanGuard = false;
  bool runtimeTargets = true;  // reshape targets built from Shape(x) (as exporters do) instead of constants with 0
  std::vector<int64_t> leading = {0, 1};  // which dims of Shape(q) the head reshape keeps
  std::vector<int64_t> kPerm = {0, 2, 3, 1};
};

// The attention subgraph as PyTorch exports it (classic: Div after Q.K^T; SDPA: Mul on both heads).
Graph attentionGraph(const AttentionOptions& o) {
  Graph g;
  g.opset = 17;
  const int64_t hd = o.heads * o.headDim;
  addInput(g, "q", {o.batch, o.sq, hd});
  addInput(g, "k", {o.batch, o.skv, hd});
  addInput(g, "v", {o.batch, o.skv, hd});
  if (o.mask) addInput(g, "mask", {o.batch, 1, 1, o.skv});
  addConst(g, "zero", int64s({1}, {0}));
  auto target = [&](const std::string& x, const std::string& name, std::vector<int64_t> tail) {
    if (!o.runtimeTargets) {
      std::vector<int64_t> t{0, 0};
      t.insert(t.end(), tail.begin(), tail.end());
      addConst(g, name, int64s({static_cast<int64_t>(t.size())}, t));
      return;
    }
    g.nodes.push_back(node("Shape", name + "_shape", {x}, {name + "_s"}));
    std::vector<std::string> parts;
    for (size_t i = 0; i < 2; ++i) {
      const std::string idx = name + "_i" + std::to_string(i);
      addConst(g, idx, int64s({}, {o.leading[i]}));
      g.nodes.push_back(node("Gather", name + "_g" + std::to_string(i), {name + "_s", idx}, {name + "_d" + std::to_string(i)}));
      g.nodes.push_back(node("Unsqueeze", name + "_u" + std::to_string(i), {name + "_d" + std::to_string(i), "zero"}, {name + "_p" + std::to_string(i)}));
      parts.push_back(name + "_p" + std::to_string(i));
    }
    addConst(g, name + "_tail", int64s({static_cast<int64_t>(tail.size())}, tail));
    parts.push_back(name + "_tail");
    Node c = node("Concat", name + "_concat", parts, {name});
    c.attrs.values["axis"] = intAttr(0);
    g.nodes.push_back(c);
  };
  auto heads = [&](const std::string& x, const std::vector<int64_t>& perm) {
    target(x, x + "_target", {-1, o.headDim});
    g.nodes.push_back(node("Reshape", x + "_reshape", {x, x + "_target"}, {x + "_4d"}));
    Node t = node("Transpose", x + "_transpose", {x + "_4d"}, {x + "_h"});
    t.attrs.values["perm"] = intsAttr(perm);
    g.nodes.push_back(t);
    return x + "_h";
  };
  std::string qh = heads("q", {0, 2, 1, 3}), kt = heads("k", o.kPerm);
  const std::string vh = heads("v", {0, 2, 1, 3});
  const float c = 1.f / std::sqrt(static_cast<float>(o.headDim));
  if (o.scale == Scale::kSdpa) {
    addConst(g, "root", scalar(std::sqrt(c)));
    g.nodes.push_back(node("Mul", "q_scale", {qh, "root"}, {"qs"}));
    g.nodes.push_back(node("Mul", "k_scale", {"root", kt}, {"ks"}));
    qh = "qs";
    kt = "ks";
  }
  g.nodes.push_back(node("MatMul", "qk", {qh, kt}, {"scores"}));
  std::string s = "scores";
  if (o.scale == Scale::kDiv) {
    addConst(g, "sqrt_d", scalar(std::sqrt(static_cast<float>(o.headDim))));
    g.nodes.push_back(node("Div", "scale", {s, "sqrt_d"}, {"scaled"}));
    s = "scaled";
  }
  if (o.mask) {
    g.nodes.push_back(node("Add", "add_mask", {s, "mask"}, {"masked"}));
    s = "masked";
  }
  Node sm = node("Softmax", "softmax", {s}, {"p"});
  sm.attrs.values["axis"] = intAttr(-1);
  g.nodes.push_back(sm);
  std::string p = "p";
  if (o.nanGuard) {
    addConst(g, "fzero", scalar(0.f));
    g.nodes.push_back(node("IsNaN", "isnan", {"p"}, {"nan"}));
    g.nodes.push_back(node("Where", "guard", {"nan", "fzero", "p"}, {"pz"}));
    p = "pz";
  }
  g.nodes.push_back(node("MatMul", "pv", {p, vh}, {"o"}));
  Node t = node("Transpose", "merge_transpose", {"o"}, {"ot"});
  t.attrs.values["perm"] = intsAttr({0, 2, 1, 3});
  g.nodes.push_back(t);
  target("q", "merge_target", {o.heads * o.headDim});
  g.nodes.push_back(node("Reshape", "merge", {"ot", "merge_target"}, {"y"}));
  g.outputs = {"y"};
  return g;
}

size_t countOp(const Graph& g, const std::string& op) {
  size_t n = 0;
  for (const auto& x : g.nodes) n += x.opType == op;
  return n;
}

// Q / K / V [B, S, H*D] and a mask [B, 1, 1, Skv] that hides the last keys of batch 1 and every key of
// batch 2's ... (rows fully masked when hideAll).
std::map<std::string, Tensor> attentionInputs(int64_t b, int64_t sq, int64_t skv, int64_t hd, bool hideAllOfLastBatch) {
  std::map<std::string, Tensor> in{{"q", uniformFloats({b, sq, hd}, 11)}, {"k", uniformFloats({b, skv, hd}, 12)},
                                   {"v", uniformFloats({b, skv, hd}, 13)}};
  Tensor m(DataType::kFloat, {b, 1, 1, skv});
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < skv; ++j) {
      float x = 0.f;
      if (i == 1 && j >= skv - 3) x = -std::numeric_limits<float>::infinity();
      if (i == 0 && j % 5 == 2) x = -3.0e38f;  // HuggingFace's finfo.min
      if (hideAllOfLastBatch && i == b - 1) x = -std::numeric_limits<float>::infinity();
      m.data<float>()[i * skv + j] = x;
    }
  in["mask"] = m;
  return in;
}

}  // namespace

TEST(fuse_attention_classic_and_sdpa_exports) {
  for (Scale sc : {Scale::kDiv, Scale::kSdpa, Scale::kNone}) {
    for (bool runtime : {true, false}) {
      AttentionOptions o;
      o.scale = sc;
      o.runtimeTargets = runtime;
      o.nanGuard = sc == Scale::kSdpa;
      o.mask = sc != Scale::kNone;
      Graph g = attentionGraph(o);
      PassCheck r = runPassAndCompare(g, "fuse_attention");
      CHECK_EQ(r.stats.changes.size(), 1u);
      CHECK(r.maxDiff <= 1e-5);
      const Node* f = findOp(g, "FusedAttention");
      CHECK(f != nullptr);
      if (!f) continue;
      CHECK_EQ(f->domain, std::string("planforge"));
      CHECK_EQ(f->attrs.getInt("num_heads", 0), 2);
      CHECK_NEAR(f->attrs.getFloat("scale", 1.f), sc == Scale::kNone ? 1.0 : 0.5, 1e-6);
      CHECK_EQ(f->attrs.getInt("nan_to_zero", 0), o.nanGuard ? 1 : 0);
      CHECK_EQ(f->inputs.size(), o.mask ? 4u : 3u);
      CHECK_EQ(f->outputs[0], std::string("y"));
      CHECK_EQ(countOp(g, "MatMul") + countOp(g, "Softmax") + countOp(g, "Transpose") + countOp(g, "Reshape"), 0u);
      CHECK(f->originalNames.size() >= 10u);
    }
  }
}

TEST(fuse_attention_leaves_other_graphs_alone) {
  {  // the head reshape swaps batch and sequence
    AttentionOptions o;
    o.leading = {1, 0};
    o.batch = 3;
    o.sq = o.skv = 3;
    Graph g = attentionGraph(o);
    PassCheck r = runPassAndCompare(g, "fuse_attention");
    CHECK(r.stats.changes.empty());
  }
  {  // K^T in another layout
    AttentionOptions o;
    o.kPerm = {0, 2, 1, 3};
    o.skv = o.sq = o.headDim = 4;
    Graph g = attentionGraph(o);
    PassCheck r = runPassAndCompare(g, "fuse_attention");
    CHECK(r.stats.changes.empty());
  }
  {  // the probabilities are a graph output too
    Graph g = attentionGraph({});
    g.outputs.push_back("p");
    PassCheck r = runPassAndCompare(g, "fuse_attention");
    CHECK(r.stats.changes.empty());
  }
}

// The reference: cross attention (Sq != Skv), -inf and finfo.min masks; fully masked rows give NaN
// (a bare Softmax) or 0 (the NaN guard), exactly as the unfused graph.
TEST(fused_attention_reference_matches_the_unfused_graph) {
  for (bool guard : {false, true}) {
    AttentionOptions o;
    o.batch = 3;
    o.nanGuard = guard;
    Graph g = attentionGraph(o);
    g.topologicalSort();
    inferShapes(g);
    const auto in = attentionInputs(3, 5, 7, 8, true);
    const auto want = runGraph(g, in).at("y");
    PassContext ctx;
    runPasses(g, {"fuse_attention"}, ctx);
    CHECK(findOp(g, "FusedAttention") != nullptr);
    const auto got = runGraph(g, in).at("y");
    CHECK(got.shape == want.shape);
    double err = 0;
    int nans = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const float a = got.data<float>()[i], b = want.data<float>()[i];
      if (std::isnan(b)) {
        CHECK(std::isnan(a));
        ++nans;
      } else {
        err = std::max(err, static_cast<double>(std::fabs(a - b)));
      }
    }
    CHECK(err <= 1e-5);
    CHECK_EQ(nans, guard ? 0 : 5 * 8);  // batch 2: every row of every head
  }
  {  // bad shapes: a clear error
    Graph g;
    g.opset = 17;
    addInput(g, "q", {2, 5, 9});
    addInput(g, "k", {2, 7, 9});
    addInput(g, "v", {2, 7, 9});
    Node f = node("FusedAttention", "att", {"q", "k", "v"}, {"y"});
    f.domain = "planforge";
    f.attrs.values["num_heads"] = intAttr(2);
    g.nodes.push_back(f);
    g.outputs = {"y"};
    CHECK_THROWS_CODE(inferShapes(g), ErrorCode::kShape, "not a multiple of num_heads");
  }
}

// ------------------------------------------------------------------ GPU

namespace {

// y = FusedAttention(q, k, v, mask) in an FP16 plan as the precision pass writes it, or in FP32.
Plan attentionPlan(int sm, const std::string& precision, const std::map<std::string, Tensor>& in, int64_t heads, bool guard) {
  Plan p = emptyPlan(sm, precision);
  Graph& g = p.graph;
  Node f = node("FusedAttention", "att", {}, {"y"});
  for (const char* n : {"q", "k", "v", "mask"}) {
    if (!in.count(n)) continue;
    addInput(g, n, in.at(n).shape);
    f.inputs.push_back(n);
  }
  f.domain = "planforge";
  f.attrs.values["num_heads"] = intAttr(heads);
  f.attrs.values["scale"] = floatAttr(0.3f);
  if (guard) f.attrs.values["nan_to_zero"] = intAttr(1);
  f.precision = precision;
  g.nodes.push_back(f);
  g.outputs = {"y"};
  inferShapes(g);
  std::vector<std::string> changes;
  if (precision == "fp16") lowerFp16Layers(g, changes);
  return p;
}

}  // namespace

TEST(gpu_fused_attention_kernels_are_in_every_cubin) {
  const auto& cubins = gpu::embeddedCubins();
  for (const auto& c : cubins) {  // none when built without nvcc
    const std::string image(reinterpret_cast<const char*>(c.data), c.size);
    for (const char* fn : {"pf_attention", "pf_attention_f16_d32", "pf_attention_f16_d64", "pf_attention_f16_d128"})
      CHECK(image.find(fn) != std::string::npos);
  }
}

// FP16 (tensor cores: head sizes 32 / 64 / 128, small grids and grids that fill an H100 (5 x 32 heads x 2,
// 3 x 24 x 3); SIMT: 48) and FP32 against the CPU reference: query
// and key tails (Sq 77, Skv 130: three key blocks), cross attention, -inf / finfo.min masks, rows that are
// fully masked (NaN guard), no mask; one launch per layer, the output rounding inside it.
TEST(gpu_fused_attention_matches_the_cpu_reference) {
  gpu::DeviceInfo dev;
  if (!gpuWithKernels(&dev)) return;
  struct Case {
    std::string precision;
    int64_t b, sq, skv, heads, d;
    bool mask, guard;
    double tol;
  };
  const std::vector<Case> cases{{"fp16", 2, 128, 128, 12, 64, true, true, 2e-2},  {"fp16", 3, 77, 130, 3, 64, true, true, 2e-2},
                                {"fp16", 2, 64, 64, 4, 32, false, false, 2e-2},   {"fp16", 1, 33, 65, 2, 128, true, true, 2e-2},
                                {"fp16", 2, 20, 50, 2, 48, true, true, 2e-2},     {"fp16", 5, 128, 96, 32, 64, true, true, 2e-2},
                                {"fp16", 3, 150, 64, 24, 32, false, false, 2e-2}, {"fp32", 3, 77, 130, 3, 64, true, true, 1e-5},
                                {"fp32", 2, 9, 40, 2, 200, false, false, 1e-5}};
  for (const Case& c : cases) {
    std::map<std::string, Tensor> in = attentionInputs(c.b, c.sq, c.skv, c.heads * c.d, c.guard);
    if (!c.mask) in.erase("mask");
    if (c.mask && c.sq == 33) {  // a mask per query too ([B, 1, Sq, Skv]: global loads, not the key-block row)
      Tensor full = uniformFloats({c.b, 1, c.sq, c.skv}, 17);
      for (int64_t i = 0; i < full.numel(); i += 5) full.data<float>()[i] = -std::numeric_limits<float>::infinity();
      in["mask"] = full;
    }
    const gpu::GpuLayerStats st = matchCpu(attentionPlan(dev.sm, c.precision, in, c.heads, c.guard), in, c.tol, {});
    // One launch, plus (FP16) a RoundToFp16 of each input (graph inputs are FP32); the output's is in the kernel.
    CHECK_EQ(st.launches, 1 + (c.precision == "fp16" ? static_cast<int>(in.size()) : 0));
  }
}
