// ONNX import: parsing limits, structure checks, legacy broadcast, Constant folding at import,
// external data confinement, allocation bombs, unsupported op listing.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

#include <onnx/onnx_pb.h>

#include "core/executor.h"
#include "core/onnx_import.h"
#include "test_framework.h"
#include "test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

struct ModelBuilder {
  onnx::ModelProto m;
  explicit ModelBuilder(int opset = 13) {
    m.set_ir_version(8);
    m.set_producer_name("unit-test");
    auto* os = m.add_opset_import();
    os->set_domain("");
    os->set_version(opset);
    m.mutable_graph()->set_name("g");
  }
  onnx::GraphProto& g() { return *m.mutable_graph(); }
  void io(onnx::ValueInfoProto* v, const std::string& name, std::vector<int64_t> dims, int elem = 1) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem);
    auto* shape = tt->mutable_shape();
    for (int64_t d : dims) {
      auto* dim = shape->add_dim();
      if (d >= 0) dim->set_dim_value(d);
      else dim->set_dim_param("batch");
    }
  }
  void input(const std::string& name, std::vector<int64_t> dims) { io(g().add_input(), name, dims); }
  void output(const std::string& name, std::vector<int64_t> dims) { io(g().add_output(), name, dims); }
  onnx::NodeProto* node(const std::string& op, const std::string& name, std::vector<std::string> ins, std::vector<std::string> outs) {
    auto* n = g().add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (auto& i : ins) n->add_input(i);
    for (auto& o : outs) n->add_output(o);
    return n;
  }
  onnx::TensorProto* init(const std::string& name, std::vector<int64_t> dims, std::vector<float> values) {
    auto* t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(1);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return t;
  }
  std::string bytes() const { return m.SerializeAsString(); }
};

void addIntAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

std::string tempDir() {
  static int counter = 0;
  std::string d = "/tmp/planforge-import-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  ::mkdir(d.c_str(), 0755);
  return d;
}

void writeFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
}

onnx::TensorProto* externalInit(ModelBuilder& mb, const std::string& name, const std::string& location, int64_t n) {
  auto* t = mb.g().add_initializer();
  t->set_name(name);
  t->set_data_type(1);
  t->add_dims(n);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = t->add_external_data();
  e->set_key("location");
  e->set_value(location);
  return t;
}

}  // namespace

TEST(import_constant_nodes_become_initializers) {
  ensureTestOps();
  ModelBuilder mb;
  mb.input("x", {-1, 2});
  mb.output("y", {-1, 2});
  auto* c = mb.node("Constant", "c", {}, {"k"});
  auto* a = c->add_attribute();
  a->set_name("value_floats");
  a->set_type(onnx::AttributeProto::FLOATS);
  a->add_floats(1);
  a->add_floats(2);
  mb.node("Add", "", {"x", "k"}, {"y"});
  ImportReport report;
  Graph g = importModelBytes(mb.bytes(), "", {}, &report);
  CHECK_EQ(report.nodeCount, 2);
  CHECK_EQ(g.nodes.size(), 1u);
  CHECK_EQ(g.nodes[0].name, std::string("Add_1"));  // unnamed nodes get a stable name
  CHECK(g.initializers.count("k"));
  CHECK(g.typeOf("y")->dims == (Shape{-1, 2}));
  CHECK_EQ(g.typeOf("y")->dimParams[0], std::string("batch"));
  auto out = runGraph(g, {{"x", floats({1, 2}, {10, 20})}});
  CHECK_NEAR(out["y"].data<float>()[1], 22, 0);
}

TEST(import_rejects_garbage_bytes_cleanly) {
  CHECK_THROWS_CODE(importModelBytes("", ""), ErrorCode::kParse, "empty");
  ModelBuilder mb;
  mb.input("x", {2});
  mb.output("y", {2});
  mb.node("Relu", "r", {"x"}, {"y"});
  std::string good = mb.bytes();
  for (size_t n = 1; n < good.size(); ++n) {
    try {
      importModelBytes(good.substr(0, n), "");
    } catch (const BuildError& e) {
      if (e.code() == ErrorCode::kInternal) PF_FAIL("truncated model gave E_INTERNAL: " << e.what());
    }
  }
  CHECK_THROWS_CODE(importModelBytes(good.substr(0, good.size() - 3), ""), ErrorCode::kParse, "protobuf parsing stopped at byte");
  std::mt19937 rng(7);
  for (int iter = 0; iter < 300; ++iter) {
    std::string junk(16 + rng() % 512, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    try {
      importModelBytes(junk, "");
      PF_FAIL("random bytes imported as a model");
    } catch (const BuildError& e) {
      if (e.code() == ErrorCode::kInternal) PF_FAIL("random bytes gave E_INTERNAL: " << e.what());
    }
  }
}

TEST(import_checks_structure_and_opset) {
  ModelBuilder cyc;
  cyc.input("x", {2});
  cyc.output("b", {2});
  cyc.node("Add", "first", {"x", "b"}, {"a"});
  cyc.node("Relu", "second", {"a"}, {"b"});
  CHECK_THROWS_CODE(importModelBytes(cyc.bytes(), ""), ErrorCode::kInvalidModel, "cycle through node 'first'");
  ModelBuilder undef;
  undef.input("x", {2});
  undef.output("y", {2});
  undef.node("Add", "adder", {"x", "nowhere"}, {"y"});
  CHECK_THROWS_CODE(importModelBytes(undef.bytes(), ""), ErrorCode::kInvalidModel, "node 'adder' (Add) uses 'nowhere'");
  ModelBuilder old(5);
  old.input("x", {2});
  old.output("y", {2});
  old.node("Relu", "r", {"x"}, {"y"});
  CHECK_THROWS_CODE(importModelBytes(old.bytes(), ""), ErrorCode::kUnsupportedOp, "opset 5");
  ModelBuilder future(22);
  future.input("x", {2});
  future.output("y", {2});
  future.node("Relu", "r", {"x"}, {"y"});
  CHECK_THROWS_CODE(importModelBytes(future.bytes(), ""), ErrorCode::kUnsupportedOp, "opset 22");
}

TEST(import_lists_every_unsupported_op) {
  ModelBuilder mb;
  mb.input("x", {2});
  mb.output("z", {2});
  mb.node("NoSuchOpA", "a1", {"x"}, {"y1"});
  mb.node("NoSuchOpB", "b1", {"y1"}, {"y2"});
  mb.node("NoSuchOpA", "a2", {"y2"}, {"z"});
  CHECK_THROWS_CODE(importModelBytes(mb.bytes(), ""), ErrorCode::kUnsupportedOp, "NoSuchOpA (a1, a2), NoSuchOpB (b1)");
  ImportOptions lenient;
  lenient.requireSupportedOps = false;
  ImportReport r;
  Graph g = importModelBytes(mb.bytes(), "", lenient, &r);
  CHECK_EQ(r.unsupportedOps, std::string("NoSuchOpA (a1, a2), NoSuchOpB (b1)"));
  CHECK(r.opTypes == (std::vector<std::string>{"NoSuchOpA", "NoSuchOpB"}));
}

TEST(import_normalizes_legacy_broadcast) {
  ensureTestOps();
  ModelBuilder mb(6);
  mb.input("a", {2, 3, 2});
  mb.output("y", {2, 3, 2});
  mb.init("b", {3}, {100, 200, 300});
  auto* n = mb.node("Add", "legacy_add", {"a", "b"}, {"y"});
  addIntAttr(n, "broadcast", 1);
  addIntAttr(n, "axis", 1);
  Graph g = importModelBytes(mb.bytes(), "");
  CHECK(!g.nodes[0].attrs.has("broadcast") && !g.nodes[0].attrs.has("axis"));
  const Tensor& b = g.initializers.at(g.nodes[0].inputs[1]);
  CHECK(b.shape == (Shape{3, 1}));
  std::vector<float> zeros(12, 0);
  auto out = runGraph(g, {{"a", floats({2, 3, 2}, zeros)}});
  const float* y = out["y"].data<float>();
  CHECK_NEAR(y[0], 100, 0);
  CHECK_NEAR(y[1], 100, 0);
  CHECK_NEAR(y[2], 200, 0);
  CHECK_NEAR(y[11], 300, 0);
}

TEST(import_external_data_is_confined_to_the_model_folder) {
  std::string dir = tempDir();
  std::string outside = tempDir();
  std::string data(16, '\0');
  float vals[4] = {1, 2, 3, 4};
  std::memcpy(&data[0], vals, 16);
  writeFile(dir + "/weights.bin", data);
  writeFile(outside + "/secret.bin", data);
  ::symlink((outside + "/secret.bin").c_str(), (dir + "/link.bin").c_str());

  auto model = [&](const std::string& location) {
    ModelBuilder mb;
    mb.input("x", {4});
    mb.output("y", {4});
    externalInit(mb, "w", location, 4);
    mb.node("Add", "add", {"x", "w"}, {"y"});
    return mb.bytes();
  };
  Graph g = importModelBytes(model("weights.bin"), dir);
  CHECK_NEAR(g.initializers.at("w").data<float>()[3], 4, 0);
  importModelBytes(model("./sub/../weights.bin"), dir);  // normalizes inside the folder
  CHECK_THROWS_CODE(importModelBytes(model(outside + "/secret.bin"), dir), ErrorCode::kExternalData, "absolute path");
  CHECK_THROWS_CODE(importModelBytes(model("../" + outside.substr(5) + "/secret.bin"), dir), ErrorCode::kExternalData, "leaves the model folder");
  CHECK_THROWS_CODE(importModelBytes(model("link.bin"), dir), ErrorCode::kExternalData, "resolves outside");
  CHECK_THROWS_CODE(importModelBytes(model("missing.bin"), dir), ErrorCode::kExternalData, "not found");
  CHECK_THROWS_CODE(importModelBytes(model("weights.bin"), ""), ErrorCode::kExternalData, "not allowed");

  ModelBuilder shortFile;
  shortFile.input("x", {8});
  shortFile.output("y", {8});
  externalInit(shortFile, "w", "weights.bin", 8);
  shortFile.node("Add", "add", {"x", "w"}, {"y"});
  CHECK_THROWS_CODE(importModelBytes(shortFile.bytes(), dir), ErrorCode::kExternalData, "too short");
}

TEST(import_rejects_allocation_bombs) {
  ModelBuilder huge;
  huge.input("x", {2});
  huge.output("y", {2});
  auto* t = huge.g().add_initializer();
  t->set_name("bomb");
  t->set_data_type(1);
  t->add_dims(1ll << 30);
  t->add_dims(1);  // 4 GiB of float32 declared, no data
  huge.node("Relu", "r", {"x"}, {"y"});
  CHECK_THROWS_CODE(importModelBytes(huge.bytes(), ""), ErrorCode::kResource, "tensor 'bomb' declares 4294967296 bytes");

  ModelBuilder overflow;
  overflow.input("x", {2});
  overflow.output("y", {2});
  auto* o = overflow.g().add_initializer();
  o->set_name("overflow");
  o->set_data_type(1);
  for (int i = 0; i < 4; ++i) o->add_dims(1ll << 20);
  overflow.node("Relu", "r", {"x"}, {"y"});
  CHECK_THROWS_CODE(importModelBytes(overflow.bytes(), ""), ErrorCode::kResource, "overflow");

  ModelBuilder total;
  total.input("x", {256});
  total.output("y", {256});
  total.init("w1", {256}, std::vector<float>(256, 1));
  total.init("w2", {256}, std::vector<float>(256, 1));
  total.node("Add", "a", {"x", "w1"}, {"t"});
  total.node("Add", "b", {"t", "w2"}, {"y"});
  ImportOptions small;
  small.maxTotalBytes = 1500;
  CHECK_THROWS_CODE(importModelBytes(total.bytes(), "", small), ErrorCode::kResource, "total limit");

  ModelBuilder mismatch;
  mismatch.input("x", {2});
  mismatch.output("y", {2});
  mismatch.init("w", {3}, {1, 2});
  mismatch.node("Add", "a", {"x", "w"}, {"y"});
  CHECK_THROWS_CODE(importModelBytes(mismatch.bytes(), ""), ErrorCode::kInvalidModel, "has 2 values");
}

TEST(read_tensor_proto_file) {
  onnx::TensorProto t;
  t.set_data_type(7);
  t.add_dims(3);
  int64_t v[3] = {5, -6, 7};
  t.set_raw_data(std::string(reinterpret_cast<char*>(v), sizeof(v)));
  std::string dir = tempDir();
  writeFile(dir + "/input_0.pb", t.SerializeAsString());
  Tensor r = readTensorProtoFile(dir + "/input_0.pb");
  CHECK(r.dtype == DataType::kInt64);
  CHECK_EQ(r.getInt64(1), -6);
  writeFile(dir + "/bad.pb", "\xff\xff\xff");
  CHECK_THROWS_CODE(readTensorProtoFile(dir + "/bad.pb"), ErrorCode::kParse, "not a valid TensorProto");
}
