// One test (or more) per optimization pass, on tiny graphs.
#include <algorithm>

#include "core/executor.h"
#include "core/passes/pass.h"
#include "test_framework.h"
#include "test_util.h"

using namespace planforge;
using namespace pftest;

namespace {
std::vector<PassStats> runOne(Graph& g, const std::string& id) {
  PassContext ctx;
  g.topologicalSort();
  inferShapes(g);
  return runPasses(g, {id}, ctx);
}
bool hasNode(const Graph& g, const std::string& name) {
  return std::any_of(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.name == name; });
}
}  // namespace

TEST(pass_registry_default_pipeline_order) {
  auto ids = PassRegistry::instance().defaultPipeline();
  auto pos = [&](const std::string& id) { return std::find(ids.begin(), ids.end(), id) - ids.begin(); };
  CHECK(pos("eliminate_identity") < pos("fold_constants"));
  CHECK(pos("fold_shape_chains") < pos("fold_constants"));
  CHECK(pos("fold_constants") < pos("eliminate_dead_nodes"));
  CHECK_EQ(static_cast<size_t>(pos("eliminate_dead_nodes")), ids.size() - 1);
  Graph g;
  PassContext ctx;
  CHECK_THROWS_CODE(runPasses(g, {"no_such_pass"}, ctx), ErrorCode::kInternal, "no_such_pass");
}

TEST(eliminate_identity_removes_identity_and_dropout) {
  ensureTestOps();
  Graph g;
  g.opset = 13;
  addInput(g, "x", {1, 4});
  g.outputs = {"y"};
  g.nodes.push_back(node("Relu", "relu", {"x"}, {"a"}));
  g.nodes.push_back(node("Identity", "id", {"a"}, {"b"}));
  g.nodes.push_back(node("Dropout", "drop", {"b"}, {"c"}));
  g.nodes.push_back(node("Relu", "relu2", {"c"}, {"y"}));
  auto stats = runOne(g, "eliminate_identity");
  CHECK_EQ(g.nodes.size(), 2u);
  CHECK(!hasNode(g, "id") && !hasNode(g, "drop"));
  CHECK_EQ(g.nodes[1].inputs[0], std::string("a"));
  CHECK_EQ(stats[0].nodesBefore, 4);
  CHECK_EQ(stats[0].nodesAfter, 2);
  CHECK_EQ(stats[0].changes.size(), 2u);
  CHECK(stats[0].changes[0].find("Identity 'id'") != std::string::npos);
}

TEST(eliminate_identity_removes_noop_cast_and_reshape) {
  ensureTestOps();
  if (!OpRegistry::instance().find("Cast") || !OpRegistry::instance().find("Reshape")) return;  // kernels not built in
  Graph g;
  g.opset = 13;
  addInput(g, "x", {2, 3});
  g.outputs = {"y"};
  g.initializers["same_shape"] = int64s({2}, {2, 3});
  g.initializers["flat_shape"] = int64s({1}, {6});
  Node same = node("Cast", "cast_same", {"x"}, {"a"});
  same.attrs.values["to"] = intAttr(1);
  Node toInt = node("Cast", "cast_int", {"a"}, {"b"});
  toInt.attrs.values["to"] = intAttr(7);
  g.nodes.push_back(same);
  g.nodes.push_back(toInt);
  g.nodes.push_back(node("Reshape", "reshape_same", {"b", "same_shape"}, {"c"}));
  g.nodes.push_back(node("Reshape", "reshape_flat", {"c", "flat_shape"}, {"y"}));
  runOne(g, "eliminate_identity");
  CHECK(!hasNode(g, "cast_same"));
  CHECK(!hasNode(g, "reshape_same"));
  CHECK(hasNode(g, "cast_int"));
  CHECK(hasNode(g, "reshape_flat"));
  auto out = runGraph(g, {{"x", floats({2, 3}, {1, 2, 3, 4, 5, 6})}});
  CHECK(out["y"].shape == Shape{6});
  CHECK_EQ(out["y"].getInt64(5), 6);
}

TEST(eliminate_identity_keeps_graph_output_names) {
  ensureTestOps();
  Graph g;
  g.opset = 13;
  addInput(g, "x", {1, 4});
  g.outputs = {"y", "z"};
  g.nodes.push_back(node("Relu", "relu", {"x"}, {"a"}));
  g.nodes.push_back(node("Identity", "to_output", {"a"}, {"y"}));  // producer renamed: relu writes "y"
  g.nodes.push_back(node("Identity", "input_passthrough", {"x"}, {"z"}));  // must stay: x is an input
  runOne(g, "eliminate_identity");
  CHECK(!hasNode(g, "to_output"));
  CHECK(hasNode(g, "input_passthrough"));
  CHECK_EQ(g.nodes[0].outputs[0], std::string("y"));
  auto out = runGraph(g, {{"x", floats({1, 4}, {-1, 2, -3, 4})}});
  CHECK_NEAR(out["y"].data<float>()[1], 2, 0);
  CHECK_NEAR(out["z"].data<float>()[0], -1, 0);
}

TEST(eliminate_identity_keeps_dropout_with_used_mask_or_training) {
  ensureTestOps();
  Graph g;
  g.opset = 13;
  addInput(g, "x", {1, 4});
  g.outputs = {"y", "mask"};
  g.nodes.push_back(node("Dropout", "masked", {"x"}, {"y", "mask"}));
  runOne(g, "eliminate_identity");
  CHECK(hasNode(g, "masked"));
  Graph t;
  t.opset = 13;
  addInput(t, "x", {1, 4});
  addInput(t, "training", {}, DataType::kBool);
  t.outputs = {"y"};
  t.nodes.push_back(node("Relu", "relu", {"x"}, {"a"}));
  t.nodes.push_back(node("Dropout", "train", {"a", "", "training"}, {"y"}));
  runOne(t, "eliminate_identity");
  CHECK(hasNode(t, "train"));
}

TEST(eliminate_dead_nodes_removes_unreachable) {
  ensureTestOps();
  Graph g;
  g.opset = 13;
  addInput(g, "x", {2});
  g.outputs = {"y"};
  g.nodes.push_back(node("Relu", "live", {"x"}, {"y"}));
  g.nodes.push_back(node("Relu", "dead1", {"x"}, {"d1"}));
  g.nodes.push_back(node("Relu", "dead2", {"d1"}, {"d2"}));
  auto stats = runOne(g, "eliminate_dead_nodes");
  CHECK_EQ(g.nodes.size(), 1u);
  CHECK_EQ(stats[0].changes.size(), 2u);
  CHECK(!g.types.count("d2"));
}

TEST(fold_constants_folds_constant_subgraphs_and_static_shapes) {
  ensureTestOps();
  Graph g;
  g.opset = 13;
  addInput(g, "x", {2, 3});
  g.outputs = {"y", "s"};
  g.initializers["a"] = floats({3}, {1, 2, 3});
  g.initializers["b"] = floats({3}, {10, 20, 30});
  g.nodes.push_back(node("Add", "const_add", {"a", "b"}, {"ab"}));
  g.nodes.push_back(node("Add", "live_add", {"x", "ab"}, {"y"}));
  g.nodes.push_back(node("Shape", "shape", {"x"}, {"s"}));
  auto stats = runOne(g, "fold_constants");
  CHECK_EQ(g.nodes.size(), 1u);
  CHECK_EQ(g.nodes[0].name, std::string("live_add"));
  CHECK_NEAR(g.initializers.at("ab").data<float>()[2], 33, 0);
  CHECK(!g.initializers.count("a"));  // pruned: nothing reads it any more
  CHECK(g.initializers.at("s").toInt64Vector() == (std::vector<int64_t>{2, 3}));
  CHECK_EQ(stats[0].changes.size(), 2u);
  auto out = runGraph(g, {{"x", floats({2, 3}, {0, 0, 0, 1, 1, 1})}});
  CHECK_NEAR(out["y"].data<float>()[5], 34, 0);
  CHECK_EQ(out["s"].getInt64(1), 3);
}

TEST(fold_constants_leaves_dynamic_shapes) {
  ensureTestOps();
  Graph g;
  g.opset = 13;
  addInput(g, "x", {-1, 3});
  g.outputs = {"s"};
  g.nodes.push_back(node("Shape", "shape", {"x"}, {"s"}));
  runOne(g, "fold_constants");
  CHECK_EQ(g.nodes.size(), 1u);
}

TEST(fold_shape_chains_folds_fixed_dims_of_dynamic_shapes) {
  ensureTestOps();
  Graph g;
  g.opset = 13;
  addInput(g, "x", {-1, 3, 8, 8});
  g.outputs = {"c", "batch"};
  g.initializers["i1"] = int64s({}, {1});
  g.initializers["i0"] = int64s({1}, {0});
  g.nodes.push_back(node("Shape", "shape", {"x"}, {"s"}));
  g.nodes.push_back(node("Gather", "channels", {"s", "i1"}, {"c"}));
  g.nodes.push_back(node("Gather", "batch_dim", {"s", "i0"}, {"batch"}));
  auto stats = runOne(g, "fold_shape_chains");
  CHECK(!hasNode(g, "channels"));
  CHECK(hasNode(g, "batch_dim"));  // the batch is symbolic: stays dynamic
  CHECK_EQ(g.initializers.at("c").getInt64(0), 3);
  CHECK(g.initializers.at("c").shape.empty());
  CHECK_EQ(stats[0].changes.size(), 1u);
}

TEST(passes_respect_cancellation) {
  ensureTestOps();
  Graph g;
  g.opset = 13;
  addInput(g, "x", {2});
  g.outputs = {"y"};
  g.nodes.push_back(node("Identity", "id", {"x"}, {"y"}));
  std::atomic<bool> cancel{true};
  PassContext ctx;
  ctx.cancel = &cancel;
  CHECK_THROWS_CODE(runPasses(g, {"eliminate_identity"}, ctx), ErrorCode::kCancelled, "cancelled");
}

// Repeated computations (same op, attributes, inputs) are computed once; graph outputs, random ops
// and different attributes keep their nodes.
TEST(eliminate_common_subexpressions_merges_repeats) {
  Graph g;
  g.opset = 17;
  addInput(g, "x", {2, 3});
  addInput(g, "m", {2, 3}, DataType::kBool);
  g.initializers["a"] = floats({}, {0.f});
  g.initializers["b"] = floats({}, {-1e4f});
  g.nodes.push_back(node("Where", "mask1", {"m", "a", "b"}, {"w1"}));
  g.nodes.push_back(node("Where", "mask2", {"m", "a", "b"}, {"w2"}));  // same as mask1
  g.nodes.push_back(node("Add", "s1", {"x", "w1"}, {"y1"}));
  g.nodes.push_back(node("Add", "s2", {"x", "w2"}, {"y2"}));  // then repeats s1, but writes a graph output: kept
  Node t1 = node("Transpose", "t1", {"x"}, {"t1"});
  t1.attrs.values["perm"] = intsAttr({1, 0});
  Node t2 = t1;
  t2.name = "t2";
  t2.outputs = {"t2"};
  t2.attrs.values["perm"] = intsAttr({0, 1});  // different attributes: kept
  g.nodes.push_back(t1);
  g.nodes.push_back(t2);
  g.nodes.push_back(node("Neg", "n1", {"x"}, {"o1"}));
  g.nodes.push_back(node("Neg", "n2", {"x"}, {"o2"}));  // writes a graph output: kept
  g.outputs = {"y1", "y2", "t1", "t2", "o1", "o2"};
  inferShapes(g);
  std::map<std::string, Tensor> in{{"x", floats({2, 3}, {1, 2, 3, 4, 5, 6})}, {"m", Tensor(DataType::kBool, {2, 3})}};
  in["m"].data<uint8_t>()[1] = 1;
  const auto before = runGraph(g, in);
  const auto stats = runPasses(g, {"eliminate_common_subexpressions"}, PassContext{});
  CHECK_EQ(stats[0].changes.size(), 1u);  // mask2 (s2 writes y2, a graph output)
  CHECK_EQ(g.nodes.size(), 7u);
  const auto after = runGraph(g, in);
  for (const auto& kv : before) CHECK(after.at(kv.first).bytes == kv.second.bytes);
}
