// Tensor, half, sha256, npy, graph structure, executor.
#include <cmath>

#include "core/executor.h"
#include "core/half.h"
#include "core/npy.h"
#include "core/sha256.h"
#include "test_framework.h"
#include "test_util.h"

using namespace planforge;
using namespace pftest;

TEST(tensor_numel_overflow_is_resource_error) {
  CHECK_THROWS_CODE(shapeNumel({1ll << 40, 1ll << 40}), ErrorCode::kResource, "elements");
  CHECK_THROWS_CODE(Tensor(DataType::kFloat, {1ll << 31, 4}), ErrorCode::kResource, "per-tensor limit");
  CHECK_EQ(shapeNumel({}), 1);
  CHECK_EQ(shapeToString({1, 3, 224, 224}), std::string("1x3x224x224"));
}

TEST(tensor_element_access) {
  Tensor h(DataType::kFloat16, {2});
  h.data<uint16_t>()[0] = floatToHalf(1.5f);
  h.data<uint16_t>()[1] = floatToHalf(-2.0f);
  CHECK_NEAR(h.getDouble(0), 1.5, 0);
  CHECK_EQ(h.getInt64(1), -2);
  Tensor b(DataType::kBool, {1});
  b.data<uint8_t>()[0] = 7;
  CHECK_EQ(b.getInt64(0), 1);
  CHECK_THROWS_CODE(b.getInt64(1), ErrorCode::kInternal, "out of range");
}

TEST(half_conversion_round_trips) {
  for (float f : {0.0f, 1.0f, -1.0f, 0.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 3.140625f})
    CHECK_EQ(halfToFloat(floatToHalf(f)), f);
  CHECK(std::isinf(halfToFloat(floatToHalf(1e6f))));
  CHECK(std::isnan(halfToFloat(floatToHalf(NAN))));
  CHECK_EQ(floatToHalf(1.0f + 1.0f / 2048), 0x3c00);  // ties to even
  CHECK_EQ(bfloat16ToFloat(floatToBfloat16(1.5f)), 1.5f);
}

TEST(sha256_known_vectors) {
  CHECK_EQ(sha256Hex("abc", 3), std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  CHECK_EQ(sha256Hex("", 0), std::string("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  std::string million(1000000, 'a');
  Sha256 h;
  for (size_t i = 0; i < million.size(); i += 999) h.update(million.data() + i, std::min<size_t>(999, million.size() - i));
  CHECK_EQ(h.hexDigest(), std::string("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

TEST(npy_round_trip_and_errors) {
  Tensor t = floats({2, 3}, {1, 2, 3, 4, 5, 6});
  std::vector<uint8_t> bytes = encodeNpy(t);
  CHECK_EQ((10 + static_cast<size_t>(bytes[8])) % 64, 0u);
  Tensor back = parseNpy(bytes.data(), bytes.size());
  CHECK(back.shape == t.shape);
  CHECK(back.bytes == t.bytes);
  Tensor scalar = int64s({}, {42});
  std::vector<uint8_t> sb = encodeNpy(scalar);
  CHECK_EQ(parseNpy(sb.data(), sb.size()).getInt64(0), 42);
  Tensor v = int64s({1}, {7});
  std::vector<uint8_t> vb = encodeNpy(v);
  CHECK(parseNpy(vb.data(), vb.size()).shape == Shape{1});
  CHECK_THROWS_CODE(parseNpy(bytes.data(), bytes.size() - 1), ErrorCode::kParse, "data is");
  CHECK_THROWS_CODE(parseNpy(bytes.data(), 5), ErrorCode::kParse, "magic");
  std::string fortran = std::string(reinterpret_cast<char*>(bytes.data()), bytes.size());
  fortran.replace(fortran.find("False"), 5, "True ");
  CHECK_THROWS_CODE(parseNpy(reinterpret_cast<const uint8_t*>(fortran.data()), fortran.size()), ErrorCode::kParse, "Fortran");
  std::string big = std::string(reinterpret_cast<char*>(bytes.data()), bytes.size());
  big.replace(big.find("<f4"), 3, ">f4");
  CHECK_THROWS_CODE(parseNpy(reinterpret_cast<const uint8_t*>(big.data()), big.size()), ErrorCode::kParse, "unsupported dtype");
}

TEST(graph_topological_sort_is_stable_and_detects_errors) {
  ensureTestOps();
  Graph g;
  addInput(g, "x", {2});
  g.outputs = {"c"};
  g.nodes.push_back(node("Identity", "n2", {"b"}, {"c"}));
  g.nodes.push_back(node("Identity", "n1", {"a"}, {"b"}));
  g.nodes.push_back(node("Identity", "n0", {"x"}, {"a"}));
  g.topologicalSort();
  CHECK_EQ(g.nodes[0].name, std::string("n0"));
  CHECK_EQ(g.nodes[2].name, std::string("n2"));

  Graph cyc;
  addInput(cyc, "x", {2});
  cyc.outputs = {"b"};
  cyc.nodes.push_back(node("Add", "loop_a", {"x", "b"}, {"a"}));
  cyc.nodes.push_back(node("Identity", "loop_b", {"a"}, {"b"}));
  CHECK_THROWS_CODE(cyc.topologicalSort(), ErrorCode::kInvalidModel, "cycle through node 'loop_a'");

  Graph undef;
  addInput(undef, "x", {2});
  undef.outputs = {"y"};
  undef.nodes.push_back(node("Add", "adder", {"x", "ghost"}, {"y"}));
  CHECK_THROWS_CODE(undef.topologicalSort(), ErrorCode::kInvalidModel, "node 'adder' (Add) uses 'ghost'");

  Graph dup;
  addInput(dup, "x", {2});
  dup.outputs = {"y"};
  dup.nodes.push_back(node("Identity", "i1", {"x"}, {"y"}));
  dup.nodes.push_back(node("Identity", "i2", {"x"}, {"y"}));
  CHECK_THROWS_CODE(dup.topologicalSort(), ErrorCode::kInvalidModel, "produced twice");
}

TEST(executor_runs_graph_and_checks_inputs) {
  ensureTestOps();
  Graph g;
  g.opset = 13;
  addInput(g, "x", {-1, 2});
  g.outputs = {"y"};
  g.initializers["w"] = floats({2}, {10, 20});
  g.nodes.push_back(node("Add", "add", {"x", "w"}, {"t"}));
  g.nodes.push_back(node("Identity", "id", {"t"}, {"y"}));
  inferShapes(g);
  CHECK(g.typeOf("y")->dims == (Shape{-1, 2}));
  auto out = runGraph(g, {{"x", floats({2, 2}, {1, 2, 3, 4})}});
  CHECK_EQ(out.size(), 1u);
  CHECK_NEAR(out["y"].data<float>()[3], 24, 0);
  CHECK_THROWS_CODE(runGraph(g, {}), ErrorCode::kProfile, "missing input 'x'");
  CHECK_THROWS_CODE(runGraph(g, {{"x", floats({2, 3}, {1, 2, 3, 4, 5, 6})}}), ErrorCode::kProfile, "dimension 1 must be 2");
  CHECK_THROWS_CODE(runGraph(g, {{"x", int64s({1, 2}, {1, 2})}}), ErrorCode::kProfile, "must be float32");
  CHECK_THROWS_CODE(runGraph(g, {{"x", floats({1, 2}, {1, 2})}, {"z", floats({1}, {1})}}), ErrorCode::kProfile, "unknown input 'z'");
  std::atomic<bool> cancel{true};
  RunOptions ro;
  ro.cancel = &cancel;
  CHECK_THROWS_CODE(runGraph(g, {{"x", floats({1, 2}, {1, 2})}}, ro), ErrorCode::kCancelled, "cancelled");
}

TEST(unsupported_ops_report_lists_every_op_and_node) {
  Graph g;
  g.nodes.push_back(node("FancyOp", "f1", {}, {"a"}));
  g.nodes.push_back(node("OtherOp", "o1", {}, {"b"}));
  g.nodes.push_back(node("FancyOp", "f2", {}, {"c"}));
  Node custom = node("Relu", "ms", {}, {"d"});
  custom.domain = "com.microsoft";
  g.nodes.push_back(custom);
  std::string r = unsupportedOpsReport(g);
  CHECK_EQ(r, std::string("FancyOp (f1, f2), OtherOp (o1), com.microsoft::Relu (ms)"));
}
