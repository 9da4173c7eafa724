// Fusion passes on tiny graphs: node counts before/after, the fused node's shape and
// originalNames, and executor outputs unchanged (within 1e-5).
#include <algorithm>

#include "fusion_test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

Graph convGraph(bool withBias) {
  Graph g;
  g.opset = 17;
  addInput(g, "x", {2, 3, 6, 6});
  addConst(g, "w", seeded({4, 3, 3, 3}, 1, 0.3f));
  std::vector<std::string> ins{"x", "w"};
  if (withBias) {
    addConst(g, "b", seeded({4}, 2, 0.2f));
    ins.push_back("b");
  }
  Node conv = node("Conv", "conv", ins, {"c"});
  conv.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  g.nodes.push_back(conv);
  return g;
}

}  // namespace

TEST(fusion_passes_are_in_the_default_pipeline_after_folding) {
  auto ids = PassRegistry::instance().defaultPipeline();
  auto pos = [&](const std::string& id) { return std::find(ids.begin(), ids.end(), id) - ids.begin(); };
  for (const char* id : {"cancel_transposes", "fuse_layernorm", "fuse_gelu", "fold_conv_batchnorm", "fuse_conv_bias_activation",
                         "fuse_gemm_bias_activation"}) {
    CHECK(pos(id) < static_cast<std::ptrdiff_t>(ids.size()));
    CHECK(pos("fold_constants") < pos(id));
    CHECK(pos(id) < pos("eliminate_dead_nodes"));
  }
  CHECK(pos("fuse_gelu") < pos("fuse_conv_bias_activation"));  // Gelu must exist before it fuses as an activation
  CHECK(pos("fold_conv_batchnorm") < pos("fuse_conv_bias_activation"));
  CHECK(pos("fold_constants") < pos("fold_matmul_scale") && pos("fold_matmul_scale") < pos("fuse_gemm_bias_activation"));
}

TEST(fold_conv_batchnorm_folds_into_weights) {
  for (bool withBias : {false, true}) {
    Graph g = convGraph(withBias);
    addConst(g, "scale", seeded({4}, 3, 0.5f, 1.f));
    addConst(g, "shift", seeded({4}, 4, 0.5f));
    addConst(g, "mean", seeded({4}, 5, 0.3f));
    addConst(g, "var", seeded({4}, 6, 0.2f, 0.6f));
    Node bn = node("BatchNormalization", "bn", {"c", "scale", "shift", "mean", "var"}, {"y"});
    bn.attrs.values["epsilon"] = floatAttr(1e-3f);
    g.nodes.push_back(bn);
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fold_conv_batchnorm");
    CHECK_EQ(r.stats.nodesBefore, 2);
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].opType, std::string("Conv"));
    CHECK_EQ(g.nodes[0].inputs.size(), 3u);
    CHECK_EQ(joined(g.nodes[0].originalNames), std::string("conv,bn"));
    CHECK_EQ(g.outputs[0], std::string("y"));
    CHECK(!g.initializers.count("mean"));  // BN parameters are gone from the graph
  }
}

TEST(fold_conv_scale_and_sum_residual_of_old_exporters) {
  // Conv -> Mul(per-channel) -> Add(per-channel) -> Sum(residual) -> Relu: BN as Mul + Add (opset 6 era).
  Graph g = convGraph(true);
  addInput(g, "skip", {2, 4, 6, 6});
  addConst(g, "s", seeded({4, 1, 1}, 3, 0.5f, 1.f));
  addConst(g, "t", seeded({4, 1, 1}, 4, 0.5f));
  g.nodes.push_back(node("Mul", "scale", {"c", "s"}, {"cs"}));
  g.nodes.push_back(node("Add", "shift", {"cs", "t"}, {"ct"}));
  g.nodes.push_back(node("Sum", "sum", {"ct", "skip"}, {"r"}));
  g.nodes.push_back(node("Relu", "relu", {"r"}, {"y"}));
  g.outputs = {"y"};
  PassCheck a = runPassAndCompare(g, "fold_conv_batchnorm");
  CHECK_EQ(a.stats.nodesAfter, 4);
  CHECK(a.maxDiff <= 1e-5);
  PassCheck b = runPassAndCompare(g, "fuse_conv_bias_activation");
  CHECK_EQ(b.stats.nodesAfter, 1);
  CHECK(b.maxDiff <= 1e-5);
  CHECK_EQ(joined(g.nodes[0].originalNames), std::string("conv,scale,shift,sum,relu"));
}

TEST(fold_conv_batchnorm_skips_training_mode_and_shared_outputs) {
  Graph g = convGraph(true);
  for (const char* p : {"scale", "shift", "mean", "var"}) addConst(g, p, seeded({4}, 9, 0.1f, 1.f));
  g.nodes.push_back(node("BatchNormalization", "bn", {"c", "scale", "shift", "mean", "var"}, {"y"}));
  g.nodes.push_back(node("Relu", "relu", {"c"}, {"z"}));  // Conv output read twice: BN cannot fold
  g.outputs = {"y", "z"};
  PassCheck r = runPassAndCompare(g, "fold_conv_batchnorm");
  CHECK_EQ(r.stats.nodesAfter, 3);
  CHECK(r.stats.changes.empty());
}

TEST(fuse_conv_bias_activation_bias_residual_relu) {
  Graph g = convGraph(true);
  addInput(g, "skip", {2, 4, 6, 6});
  addConst(g, "bias", seeded({1, 4, 1, 1}, 8, 0.2f));
  g.nodes.push_back(node("Add", "add_bias", {"c", "bias"}, {"cb"}));
  g.nodes.push_back(node("Add", "add_skip", {"skip", "cb"}, {"s"}));
  g.nodes.push_back(node("Relu", "relu", {"s"}, {"y"}));
  g.outputs = {"y"};
  PassCheck r = runPassAndCompare(g, "fuse_conv_bias_activation");
  CHECK_EQ(r.stats.nodesBefore, 4);
  CHECK_EQ(r.stats.nodesAfter, 1);
  CHECK(r.maxDiff <= 1e-5);
  const Node& f = g.nodes[0];
  CHECK_EQ(f.opType, std::string("FusedConv"));
  CHECK_EQ(f.domain, std::string("planforge"));
  CHECK_EQ(f.attrs.getString("activation", ""), std::string("Relu"));
  CHECK_EQ(f.inputs.size(), 4u);
  CHECK_EQ(f.inputs[3], std::string("skip"));
  CHECK_EQ(joined(f.originalNames), std::string("conv,add_bias,add_skip,relu"));
  CHECK_EQ(f.outputs[0], std::string("y"));
  CHECK_EQ(g.opsetImports.count("planforge"), 1u);
}

TEST(fuse_conv_bias_activation_silu_clip_hardswish_and_plain_bias) {
  // SiLU written as x * Sigmoid(x).
  {
    Graph g = convGraph(false);
    g.nodes.push_back(node("Sigmoid", "sig", {"c"}, {"s"}));
    g.nodes.push_back(node("Mul", "mul", {"c", "s"}, {"y"}));
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_conv_bias_activation");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].attrs.getString("activation", ""), std::string("SiLU"));
    CHECK_EQ(joined(g.nodes[0].originalNames), std::string("conv,sig,mul"));
  }
  // HardSwish written as x * HardSigmoid(x, alpha=1/6).
  {
    Graph g = convGraph(true);
    Node hs = node("HardSigmoid", "hsig", {"c"}, {"s"});
    hs.attrs.values["alpha"] = floatAttr(1.f / 6.f);
    g.nodes.push_back(hs);
    g.nodes.push_back(node("Mul", "mul", {"s", "c"}, {"y"}));
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_conv_bias_activation");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].attrs.getString("activation", ""), std::string("HardSwish"));
  }
  // Relu6 as Clip with constant min/max inputs (opset >= 11).
  {
    Graph g = convGraph(true);
    addConst(g, "lo", scalar(0.f));
    addConst(g, "hi", scalar(0.25f));
    g.nodes.push_back(node("Clip", "clip", {"c", "lo", "hi"}, {"y"}));
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_conv_bias_activation");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].attrs.getString("activation", ""), std::string("Clip"));
    CHECK_NEAR(g.nodes[0].attrs.getFloat("activation_beta", 0), 0.25, 1e-7);
  }
  for (const char* act : {"HardSwish", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "Gelu"}) {
    Graph g = convGraph(true);
    Node a = node(act, "act", {"c"}, {"y"});
    if (std::string(act) == "LeakyRelu") a.attrs.values["alpha"] = floatAttr(0.3f);
    if (std::string(act) == "Gelu") a.attrs.values["approximate"] = stringAttr("tanh");
    g.nodes.push_back(a);
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_conv_bias_activation");
    CHECK_EQ(r.stats.nodesAfter, 1);
    if (!(r.maxDiff <= 1e-5)) PF_FAIL(act << " differs by " << r.maxDiff);
  }
  // Only a bias Add: stays a Conv with the bias merged.
  {
    Graph g = convGraph(true);
    addConst(g, "bias", seeded({4, 1, 1}, 8, 0.2f));
    g.nodes.push_back(node("Add", "add_bias", {"bias", "c"}, {"y"}));
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_conv_bias_activation");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].opType, std::string("Conv"));
  }
  // The Conv output is also a graph output: nothing fuses.
  {
    Graph g = convGraph(true);
    g.nodes.push_back(node("Relu", "relu", {"c"}, {"y"}));
    g.outputs = {"c", "y"};
    PassCheck r = runPassAndCompare(g, "fuse_conv_bias_activation");
    CHECK_EQ(r.stats.nodesAfter, 2);
  }
}

TEST(fuse_gemm_bias_activation_matmul_and_gemm) {
  {
    Graph g;
    g.opset = 17;
    addInput(g, "x", {-1, 5, 8});
    addConst(g, "w", seeded({8, 6}, 1, 0.4f));
    addConst(g, "b", seeded({6}, 2, 0.3f));
    addInput(g, "r", {-1, 5, 6});
    g.nodes.push_back(node("MatMul", "mm", {"x", "w"}, {"m"}));
    g.nodes.push_back(node("Add", "add", {"m", "b"}, {"a"}));
    g.nodes.push_back(node("Add", "res", {"a", "r"}, {"s"}));
    g.nodes.push_back(node("Tanh", "tanh", {"s"}, {"y"}));
    g.outputs = {"y"};
    // Symbolic batch: concrete inputs for the comparison.
    g.types["x"].dims[0] = 3;
    g.types["r"].dims[0] = 3;
    PassCheck r = runPassAndCompare(g, "fuse_gemm_bias_activation");
    CHECK_EQ(r.stats.nodesBefore, 4);
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].opType, std::string("FusedMatMul"));
    CHECK_EQ(joined(g.nodes[0].inputs), std::string("x,w,b,r"));
    CHECK_EQ(joined(g.nodes[0].originalNames), std::string("mm,add,res,tanh"));
  }
  {
    Graph g;
    g.opset = 13;
    addInput(g, "x", {4, 8});
    addConst(g, "w", seeded({6, 8}, 1, 0.4f));
    addConst(g, "c", seeded({6}, 2, 0.3f));
    Node gemm = node("Gemm", "fc", {"x", "w", "c"}, {"m"});
    gemm.attrs.values["transB"] = intAttr(1);
    gemm.attrs.values["alpha"] = floatAttr(0.5f);
    g.nodes.push_back(gemm);
    Node lr = node("LeakyRelu", "lrelu", {"m"}, {"y"});
    lr.attrs.values["alpha"] = floatAttr(0.2f);
    g.nodes.push_back(lr);
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_gemm_bias_activation");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].opType, std::string("FusedGemm"));
    CHECK_EQ(g.nodes[0].attrs.getString("activation", ""), std::string("LeakyRelu"));
    CHECK_NEAR(g.nodes[0].attrs.getFloat("activation_alpha", 0), 0.2, 1e-7);
  }
  {  // Gemm without C + bias Add: stays a Gemm, the bias becomes C.
    Graph g;
    g.opset = 13;
    addInput(g, "x", {4, 8});
    addConst(g, "w", seeded({8, 6}, 1, 0.4f));
    addConst(g, "b", seeded({1, 6}, 2, 0.3f));
    g.nodes.push_back(node("Gemm", "fc", {"x", "w"}, {"m"}));
    g.nodes.push_back(node("Add", "add", {"b", "m"}, {"y"}));
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_gemm_bias_activation");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].opType, std::string("Gemm"));
    CHECK_EQ(g.nodes[0].inputs.size(), 3u);
  }
}

namespace {

// The PyTorch (Pow/Div, gamma, beta) and PaddlePaddle/TF-style (Mul(d,d), Reciprocal, no gamma,
// axes as an input) decompositions of LayerNorm over the last axis.
Graph layerNormGraph(bool paddleStyle) {
  Graph g;
  g.opset = paddleStyle ? 18 : 13;
  addInput(g, "x", {2, 3, 8});
  g.outputs = {"y"};
  Node m = node("ReduceMean", "mean", {"x"}, {"m"});
  Node v = node("ReduceMean", "var", {"sq"}, {"v"});
  if (paddleStyle) {
    addConst(g, "axes", int64s({1}, {-1}));
    m.inputs.push_back("axes");
    v.inputs.push_back("axes");
  } else {
    m.attrs.values["axes"] = intsAttr({-1});
    v.attrs.values["axes"] = intsAttr({2});
  }
  g.nodes.push_back(m);
  g.nodes.push_back(node("Sub", "sub", {"x", "m"}, {"d"}));
  if (paddleStyle) {
    g.nodes.push_back(node("Mul", "square", {"d", "d"}, {"sq"}));
  } else {
    addConst(g, "two", scalar(2.f));
    g.nodes.push_back(node("Pow", "pow", {"d", "two"}, {"sq"}));
  }
  g.nodes.push_back(v);
  addConst(g, "eps", scalar(1e-5f));
  g.nodes.push_back(node("Add", "add_eps", {paddleStyle ? "eps" : "v", paddleStyle ? "v" : "eps"}, {"ve"}));
  g.nodes.push_back(node("Sqrt", "sqrt", {"ve"}, {"sd"}));
  if (paddleStyle) {
    g.nodes.push_back(node("Reciprocal", "recip", {"sd"}, {"rs"}));
    g.nodes.push_back(node("Mul", "norm", {"rs", "d"}, {"n"}));
    addConst(g, "beta", seeded({8}, 4, 0.5f));
    g.nodes.push_back(node("Add", "add_beta", {"n", "beta"}, {"y"}));
  } else {
    g.nodes.push_back(node("Div", "div", {"d", "sd"}, {"n"}));
    addConst(g, "gamma", seeded({1, 1, 8}, 3, 0.5f, 1.f));
    addConst(g, "beta", seeded({8}, 4, 0.5f));
    g.nodes.push_back(node("Mul", "mul_gamma", {"gamma", "n"}, {"ng"}));
    g.nodes.push_back(node("Add", "add_beta", {"ng", "beta"}, {"y"}));
  }
  return g;
}

}  // namespace

TEST(fuse_layernorm_pytorch_and_paddle_exports) {
  for (bool paddle : {false, true}) {
    Graph g = layerNormGraph(paddle);
    const size_t before = g.nodes.size();
    PassCheck r = runPassAndCompare(g, "fuse_layernorm");
    CHECK_EQ(r.stats.nodesBefore, static_cast<int64_t>(before));
    CHECK_EQ(r.stats.nodesAfter, 1);
    if (!(r.maxDiff <= 1e-5)) PF_FAIL("paddle=" << paddle << " differs by " << r.maxDiff);
    const Node& ln = g.nodes[0];
    CHECK_EQ(ln.opType, std::string("LayerNormalization"));
    CHECK_EQ(ln.attrs.getInt("axis", 0), 2);
    CHECK_NEAR(ln.attrs.getFloat("epsilon", 0), 1e-5, 1e-9);
    CHECK_EQ(ln.inputs.size(), 3u);
    CHECK_EQ(ln.originalNames.size(), before);
    CHECK_EQ(ln.originalNames.front(), std::string("mean"));
    CHECK_EQ(shapeToString(g.initializers.at(ln.inputs[1]).shape), std::string("8"));
  }
}

TEST(fuse_layernorm_with_two_subtractions) {
  // Some exporters compute x - mean twice: once for the variance, once for the division.
  Graph g = layerNormGraph(false);
  g.nodes.push_back(node("Sub", "sub2", {"x", "m"}, {"d2"}));
  for (auto& n : g.nodes)
    if (n.name == "div") n.inputs[0] = "d2";
  PassCheck r = runPassAndCompare(g, "fuse_layernorm");
  CHECK_EQ(r.stats.nodesBefore, 10);
  CHECK_EQ(r.stats.nodesAfter, 1);
  CHECK(r.maxDiff <= 1e-5);
  CHECK_EQ(g.nodes[0].originalNames.size(), 10u);
}

TEST(fuse_layernorm_rejects_non_trailing_axes_and_shared_intermediates) {
  Graph g = layerNormGraph(false);
  g.nodes[0].attrs.values["axes"] = intsAttr({1});  // mean over a middle axis: not a LayerNorm
  g.nodes[3].attrs.values["axes"] = intsAttr({1});
  PassCheck r = runPassAndCompare(g, "fuse_layernorm");
  CHECK_EQ(r.stats.nodesAfter, r.stats.nodesBefore);
  Graph h = layerNormGraph(false);
  h.outputs.push_back("v");  // the variance is also an output
  PassCheck r2 = runPassAndCompare(h, "fuse_layernorm");
  CHECK_EQ(r2.stats.nodesAfter, r2.stats.nodesBefore);
}

TEST(fuse_gelu_erf_forms_and_tanh_form) {
  // (x * a) * 0.5 with Div(x, sqrt 2)
  {
    Graph g;
    g.opset = 13;
    addInput(g, "x", {2, 16});
    addConst(g, "sqrt2", scalar(1.4142135f));
    addConst(g, "one", scalar(1.f));
    addConst(g, "half", scalar(0.5f));
    g.nodes.push_back(node("Div", "div", {"x", "sqrt2"}, {"u"}));
    g.nodes.push_back(node("Erf", "erf", {"u"}, {"e"}));
    g.nodes.push_back(node("Add", "add", {"e", "one"}, {"a"}));
    g.nodes.push_back(node("Mul", "mul", {"x", "a"}, {"m"}));
    g.nodes.push_back(node("Mul", "mul_half", {"m", "half"}, {"y"}));
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_gelu");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].opType, std::string("Gelu"));
    CHECK_EQ(g.nodes[0].attrs.getString("approximate", "none"), std::string("none"));
    CHECK_EQ(joined(g.nodes[0].originalNames), std::string("div,erf,add,mul,mul_half"));
  }
  // (x * 0.5) * a with Mul(x, 1/sqrt 2)
  {
    Graph g;
    g.opset = 13;
    addInput(g, "x", {2, 16});
    addConst(g, "rsqrt2", scalar(0.70710677f));
    addConst(g, "one", scalar(1.f));
    addConst(g, "half", scalar(0.5f));
    g.nodes.push_back(node("Mul", "half_x", {"half", "x"}, {"h"}));
    g.nodes.push_back(node("Mul", "scale", {"x", "rsqrt2"}, {"u"}));
    g.nodes.push_back(node("Erf", "erf", {"u"}, {"e"}));
    g.nodes.push_back(node("Add", "add", {"one", "e"}, {"a"}));
    g.nodes.push_back(node("Mul", "mul", {"h", "a"}, {"y"}));
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_gelu");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
  }
  // tanh approximation with Pow(x, 3) and (a * 0.5) * x
  {
    Graph g;
    g.opset = 13;
    addInput(g, "x", {2, 16});
    addConst(g, "three", scalar(3.f));
    addConst(g, "c", scalar(0.044715f));
    addConst(g, "k", scalar(0.7978846f));
    addConst(g, "one", scalar(1.f));
    addConst(g, "half", scalar(0.5f));
    g.nodes.push_back(node("Pow", "pow", {"x", "three"}, {"p"}));
    g.nodes.push_back(node("Mul", "mulc", {"p", "c"}, {"q"}));
    g.nodes.push_back(node("Add", "addx", {"x", "q"}, {"r"}));
    g.nodes.push_back(node("Mul", "mulk", {"k", "r"}, {"s"}));
    g.nodes.push_back(node("Tanh", "tanh", {"s"}, {"t"}));
    g.nodes.push_back(node("Add", "add1", {"t", "one"}, {"a"}));
    g.nodes.push_back(node("Mul", "mulhalf", {"a", "half"}, {"ah"}));
    g.nodes.push_back(node("Mul", "mulx", {"x", "ah"}, {"y"}));
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_gelu");
    CHECK_EQ(r.stats.nodesBefore, 8);
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_EQ(g.nodes[0].attrs.getString("approximate", "none"), std::string("tanh"));
    CHECK_EQ(g.nodes[0].originalNames.size(), 8u);
  }
  // A wrong constant (not 1/sqrt 2) is not GELU.
  {
    Graph g;
    g.opset = 13;
    addInput(g, "x", {2, 16});
    addConst(g, "c", scalar(0.9f));
    addConst(g, "one", scalar(1.f));
    addConst(g, "half", scalar(0.5f));
    g.nodes.push_back(node("Mul", "scale", {"x", "c"}, {"u"}));
    g.nodes.push_back(node("Erf", "erf", {"u"}, {"e"}));
    g.nodes.push_back(node("Add", "add", {"e", "one"}, {"a"}));
    g.nodes.push_back(node("Mul", "mul", {"x", "a"}, {"m"}));
    g.nodes.push_back(node("Mul", "mul_half", {"m", "half"}, {"y"}));
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "fuse_gelu");
    CHECK_EQ(r.stats.nodesAfter, 5);
  }
}

TEST(cancel_transposes_inverse_composed_and_shared) {
  {  // NCHW -> NHWC -> NCHW: both go
    Graph g;
    g.opset = 13;
    addInput(g, "x", {1, 2, 3, 4});
    Node a = node("Transpose", "to_nhwc", {"x"}, {"t"});
    a.attrs.values["perm"] = intsAttr({0, 2, 3, 1});
    Node b = node("Transpose", "to_nchw", {"t"}, {"u"});
    b.attrs.values["perm"] = intsAttr({0, 3, 1, 2});
    g.nodes = {a, b, node("Relu", "relu", {"u"}, {"y"})};
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "cancel_transposes");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff == 0);
    CHECK_EQ(g.nodes[0].inputs[0], std::string("x"));
  }
  {  // composed into one; default perm (reverse) on the first
    Graph g;
    g.opset = 13;
    addInput(g, "x", {2, 3, 4});
    Node a = node("Transpose", "rev", {"x"}, {"t"});
    Node b = node("Transpose", "swap", {"t"}, {"y"});
    b.attrs.values["perm"] = intsAttr({1, 0, 2});
    g.nodes = {a, b};
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "cancel_transposes");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff == 0);
    CHECK_EQ(g.nodes[0].inputs[0], std::string("x"));
    CHECK_EQ(joined(g.nodes[0].originalNames), std::string("rev,swap"));
  }
  {  // the first Transpose is read elsewhere: it stays, the second reads x directly (and cancels)
    Graph g;
    g.opset = 13;
    addInput(g, "x", {2, 3});
    Node a = node("Transpose", "t1", {"x"}, {"t"});
    Node b = node("Transpose", "t2", {"t"}, {"u"});
    g.nodes = {a, b, node("Relu", "relu", {"u"}, {"y"}), node("Relu", "relu2", {"t"}, {"z"})};
    g.outputs = {"y", "z"};
    PassCheck r = runPassAndCompare(g, "cancel_transposes");
    CHECK_EQ(r.stats.nodesAfter, 3);
    CHECK(r.maxDiff == 0);
  }
  {  // inverse pair between a graph input and a graph output: an Identity keeps the output name
    Graph g;
    g.opset = 13;
    addInput(g, "x", {2, 3});
    g.nodes = {node("Transpose", "t1", {"x"}, {"t"}), node("Transpose", "t2", {"t"}, {"y"})};
    g.outputs = {"y"};
    PassCheck r = runPassAndCompare(g, "cancel_transposes");
    CHECK_EQ(r.stats.nodesAfter, 1);
    CHECK(r.maxDiff == 0);
    CHECK_EQ(g.outputs[0], std::string("y"));
  }
}

TEST(fused_ops_reject_bad_attributes_and_residual_shapes) {
  Graph g = convGraph(true);
  Node& conv = g.nodes[0];
  conv.opType = "FusedConv";
  conv.domain = "planforge";
  conv.attrs.values["activation"] = stringAttr("Swish2");
  g.outputs = {"c"};
  CHECK_THROWS_CODE(inferShapes(g), ErrorCode::kInvalidModel, "Swish2");
  g.nodes[0].attrs.values["activation"] = stringAttr("Relu");
  addInput(g, "skip", {2, 4, 5, 5});
  g.nodes[0].inputs.push_back("skip");
  CHECK_THROWS_CODE(inferShapes(g), ErrorCode::kShape, "residual");
}

// BERT-style attention scaling: MatMul + bias -> Reshape -> Transpose -> Mul(scalar) folds into the
// weights and bias; a Gemm scales alpha and beta; a Mul by a tensor, a Mul of a value with a second
// reader, and a MatMul of two activations stay.
TEST(fold_matmul_scale_through_bias_and_views) {
  {
    Graph g;
    g.opset = 17;
    addInput(g, "x", {2, 4, 16});
    addConst(g, "w", seeded({16, 16}, 1, 0.4f));
    addConst(g, "b", seeded({16}, 2, 0.3f));
    addConst(g, "shape", int64s({4}, {2, 4, 2, 8}));
    addConst(g, "c", scalar(0.35f));
    g.nodes.push_back(node("MatMul", "q", {"x", "w"}, {"m"}));
    g.nodes.push_back(node("Add", "bias", {"m", "b"}, {"a"}));
    g.nodes.push_back(node("Reshape", "heads", {"a", "shape"}, {"r"}));
    Node tr = node("Transpose", "t", {"r"}, {"t"});
    tr.attrs.values["perm"] = intsAttr({0, 2, 1, 3});
    g.nodes.push_back(tr);
    g.nodes.push_back(node("Mul", "scale", {"t", "c"}, {"y"}));
    g.nodes.push_back(node("Relu", "after", {"y"}, {"z"}));
    g.outputs = {"z"};
    PassCheck r = runPassAndCompare(g, "fold_matmul_scale");
    CHECK_EQ(r.stats.nodesBefore, 6);
    CHECK_EQ(r.stats.nodesAfter, 5);
    CHECK(r.maxDiff <= 1e-5);
    CHECK(findOp(g, "Mul") == nullptr);
    CHECK_EQ(r.stats.changes.size(), 1u);
    CHECK(r.stats.changes[0].find("through 2 view(s)") != std::string::npos);
    CHECK_EQ(joined(findOp(g, "MatMul")->originalNames), std::string("q,scale"));
  }
  {  // Gemm: alpha and beta
    Graph g;
    g.opset = 13;
    addInput(g, "x", {3, 8});
    addConst(g, "w", seeded({6, 8}, 3, 0.4f));
    addConst(g, "cc", seeded({6}, 4, 0.3f));
    addConst(g, "s", scalar(-0.5f));
    Node gemm = node("Gemm", "fc", {"x", "w", "cc"}, {"m"});
    gemm.attrs.values["transB"] = intAttr(1);
    gemm.attrs.values["alpha"] = floatAttr(2.f);
    g.nodes.push_back(gemm);
    g.nodes.push_back(node("Mul", "scale", {"s", "m"}, {"y"}));
    g.nodes.push_back(node("Relu", "after", {"y"}, {"z"}));
    g.outputs = {"z"};
    PassCheck r = runPassAndCompare(g, "fold_matmul_scale");
    CHECK_EQ(r.stats.nodesAfter, 2);
    CHECK(r.maxDiff <= 1e-5);
    CHECK_NEAR(findOp(g, "Gemm")->attrs.getFloat("alpha", 0), -1.0, 1e-7);
    CHECK_NEAR(findOp(g, "Gemm")->attrs.getFloat("beta", 0), -0.5, 1e-7);
  }
  {  // unchanged: a per-element Mul, a second reader of the MatMul output, two activations
    Graph g;
    g.opset = 17;
    addInput(g, "x", {4, 8});
    addInput(g, "k", {8, 4});
    addConst(g, "w", seeded({8, 4}, 5, 0.4f));
    addConst(g, "v", seeded({4}, 6, 0.4f));
    addConst(g, "c", scalar(0.25f));
    g.nodes.push_back(node("MatMul", "a", {"x", "w"}, {"m1"}));
    g.nodes.push_back(node("Mul", "vec", {"m1", "v"}, {"y1"}));
    g.nodes.push_back(node("MatMul", "b", {"x", "w"}, {"m2"}));
    g.nodes.push_back(node("Mul", "shared", {"m2", "c"}, {"y2"}));
    g.nodes.push_back(node("Relu", "second", {"m2"}, {"y3"}));
    g.nodes.push_back(node("MatMul", "act", {"x", "k"}, {"m3"}));
    g.nodes.push_back(node("Mul", "actscale", {"m3", "c"}, {"y4"}));
    g.outputs = {"y1", "y2", "y3", "y4"};
    PassCheck r = runPassAndCompare(g, "fold_matmul_scale");
    CHECK_EQ(r.stats.nodesAfter, 7);
    CHECK(r.stats.changes.empty());
  }
}

