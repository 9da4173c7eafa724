// fold_constants on Q/DQ models: a DequantizeLinear of an int8 / uint8 constant is a quantized
// weight carrying the model's own scales. It must survive constant folding so the INT8 path keeps
// those scales instead of requantizing a folded float weight with scales of its own.
#include "core/precision/precision.h"
#include "fusion_test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

Tensor int8s(Shape shape, std::vector<int8_t> v) {
  Tensor t(DataType::kInt8, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) t.data<int8_t>()[i] = v[i];
  return t;
}

Tensor uint8s(Shape shape, std::vector<uint8_t> v) {
  Tensor t(DataType::kUint8, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) t.data<uint8_t>()[i] = v[i];
  return t;
}

// x[1,2,4,4] -> Q -> DQ -> Conv(W = DQ(int8 [3,2,1,1], per-channel scales)) -> c
// c -> MatMul(W2 = DQ(uint8 [4,2], per-tensor scale)) -> m -> Add(k = a + b) -> y
Graph qdqNet() {
  Graph g;
  g.opset = 13;
  addInput(g, "x", {1, 2, 4, 4});
  addConst(g, "xs", scalar(0.02f));
  addConst(g, "xz", Tensor(DataType::kInt8, {}));
  addConst(g, "wq", int8s({3, 2, 1, 1}, {12, -40, 127, 3, -127, 64}));
  addConst(g, "ws", floats({3}, {0.01f, 0.005f, 0.02f}));
  addConst(g, "wz", Tensor(DataType::kInt8, {3}));
  addConst(g, "w2q", uint8s({4, 2}, {0, 17, 128, 200, 255, 90, 128, 1}));
  addConst(g, "w2s", scalar(0.03f));
  addConst(g, "w2z", uint8s({}, {128}));
  addConst(g, "a", floats({2}, {1, 2}));
  addConst(g, "b", floats({2}, {10, 20}));
  g.nodes.push_back(node("QuantizeLinear", "q", {"x", "xs", "xz"}, {"xq"}));
  g.nodes.push_back(node("DequantizeLinear", "dq", {"xq", "xs", "xz"}, {"xd"}));
  Node wdq = node("DequantizeLinear", "w_dq", {"wq", "ws", "wz"}, {"wd"});
  wdq.attrs.values["axis"] = intAttr(0);
  g.nodes.push_back(wdq);
  g.nodes.push_back(node("Conv", "conv", {"xd", "wd"}, {"c"}));
  g.nodes.push_back(node("DequantizeLinear", "w2_dq", {"w2q", "w2s", "w2z"}, {"w2d"}));
  g.nodes.push_back(node("MatMul", "matmul", {"c", "w2d"}, {"m"}));
  g.nodes.push_back(node("Add", "const_add", {"a", "b"}, {"k"}));
  g.nodes.push_back(node("Add", "add", {"m", "k"}, {"y"}));
  g.outputs = {"y"};
  inferShapes(g);
  return g;
}

const Node* findNode(const Graph& g, const std::string& name) {
  for (const auto& n : g.nodes)
    if (n.name == name) return &n;
  return nullptr;
}

}  // namespace

TEST(fold_constants_keeps_dequantize_of_int8_and_uint8_weights) {
  Graph g = qdqNet();
  const Tensor wq = g.initializers.at("wq"), w2q = g.initializers.at("w2q");
  PassCheck r = runPassAndCompare(g, "fold_constants");
  CHECK_EQ(r.maxDiff, 0.0);
  // The quantized weights stay quantized, with their own scales and zero points.
  CHECK(findNode(g, "w_dq") != nullptr);
  CHECK(findNode(g, "w2_dq") != nullptr);
  CHECK(g.initializers.at("wq").dtype == DataType::kInt8 && g.initializers.at("wq").bytes == wq.bytes);
  CHECK(g.initializers.at("w2q").dtype == DataType::kUint8 && g.initializers.at("w2q").bytes == w2q.bytes);
  CHECK_NEAR(g.initializers.at("ws").data<float>()[1], 0.005f, 0);
  CHECK(!g.initializers.count("wd") && !g.initializers.count("w2d"));
  // Other constant subgraphs still fold.
  CHECK(findNode(g, "const_add") == nullptr);
  CHECK_NEAR(g.initializers.at("k").data<float>()[1], 22, 0);
  CHECK_EQ(r.stats.changes.size(), 1u);
  CHECK(r.stats.changes[0].find("const_add") != std::string::npos);
}

TEST(int8_build_of_a_qdq_model_keeps_the_models_weight_scales) {
  // The whole default pipeline, then INT8: the Conv reads the model's DequantizeLinear weight
  // (no requantized "_int8" copy with new scales) and its Q/DQ input; nothing needs calibrating.
  Graph g = qdqNet();
  g.nodes.resize(4);  // x -> Q -> DQ -> Conv(DQ weight) -> c
  g.outputs = {"c"};
  g.topologicalSort();
  inferShapes(g);
  const Graph before = g;
  PassContext ctx;
  runPasses(g, PassRegistry::instance().defaultPipeline(), ctx);
  PrecisionConfig pc;
  pc.precision = "int8";
  CalibrationTable table;
  std::vector<std::string> changes;
  applyPrecision(g, pc, ctx, table, changes);
  CHECK(table.amax.empty());
  const Node* conv = nullptr;
  for (const auto& n : g.nodes)
    if (n.opType == "Conv" || n.opType == "FusedConv") conv = &n;
  CHECK(conv != nullptr);
  CHECK_EQ(conv->precision, std::string("int8"));
  const int wp = g.producerIndex(conv->inputs[1]);
  CHECK(wp >= 0);
  const Node& wdq = g.nodes[static_cast<size_t>(wp)];
  CHECK_EQ(wdq.opType, std::string("DequantizeLinear"));
  CHECK_EQ(wdq.inputs[0], std::string("wq"));
  CHECK_EQ(wdq.inputs[1], std::string("ws"));
  CHECK(g.initializers.at("wq").bytes == before.initializers.at("wq").bytes);
  CHECK(g.initializers.at("ws").bytes == before.initializers.at("ws").bytes);
  for (const auto& kv : g.initializers) CHECK(kv.first.find("_int8") == std::string::npos);
  bool kept = false;
  for (const auto& c : changes) kept = kept || c.find("2 inputs keep the model's own Q/DQ scales") != std::string::npos;
  if (!kept) PF_FAIL("precision changes do not say the model's Q/DQ scales were kept");
  // Same numbers as the model itself.
  auto in = seededInputs(before, 3);
  CHECK_EQ(maxAbsDiff(runGraph(before, in).at("c"), runGraph(g, in).at("c")), 0.0);
}
