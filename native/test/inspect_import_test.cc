// inspectModel / checkModelJson (streaming, weights left unread) against importModel /
// checkModelJsonWholeFile (the whole file in memory): the same JSON or the same error (code and
// message) for every model: the conformance models, hand-made models with large payloads of every
// kind, truncations at every byte and random byte mutations.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <random>

#include <onnx/onnx_pb.h>

#include "core/onnx_import.h"
#include "core/onnx_lazy_reader.h"
#include "core/reports.h"
#include "test_framework.h"

using namespace planforge;

namespace {

std::string tempDir() {
  static int counter = 0;
  std::string d = "/tmp/planforge-inspect-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  ::mkdir(d.c_str(), 0700);
  return d;
}

void writeFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string outcome(const std::function<std::string()>& fn) {
  try {
    return fn();
  } catch (const BuildError& e) {
    return std::string(errorCodeName(e.code())) + ": " + e.what();
  }
}

// Compares both checks of the file at `path`, streaming with each tensor-size threshold.
void expectSameCheck(const std::string& path, const std::vector<uint64_t>& keeps = {0, 64, kInspectKeepTensorBytes}) {
  const std::string want = outcome([&] { return checkModelJsonWholeFile(path); });
  for (uint64_t keep : keeps) {
    const std::string got = outcome([&] { return checkModelJson(path, keep); });
    if (got != want) PF_FAIL(path << " (keep " << keep << "):\n  whole file: " << want << "\n  streaming:  " << got);
  }
}

// The same on bytes: importModelBytes vs inspectModelBytes (no model dir), compared on the error or
// on the report and the types of inputs and outputs.
std::string importSummary(const std::function<Graph(ImportReport*)>& fn) {
  return outcome([&] {
    ImportReport r;
    Graph g = fn(&r);
    std::string s = std::to_string(r.nodeCount) + "/" + std::to_string(r.initializerCount) + "/" + r.unsupportedOps + "|";
    for (const auto& t : r.opTypes) s += t + ",";
    for (const auto* names : {&g.inputs, &g.outputs})
      for (const auto& n : *names) {
        const ValueType* t = g.typeOf(n);
        s += "|" + n + ":" + (t ? t->toString() : "?");
      }
    return s;
  });
}

void expectSameBytes(const std::string& bytes, uint64_t keep, const std::string& what) {
  ImportOptions opts;
  opts.requireSupportedOps = false;
  const std::string want = importSummary([&](ImportReport* r) { return importModelBytes(bytes, "", opts, r); });
  const std::string got = importSummary([&](ImportReport* r) { return inspectModelBytes(bytes, "", opts, r, keep); });
  if (got != want) {
    writeFile("/tmp/planforge-inspect-mismatch.onnx", bytes);
    PF_FAIL(what << " (keep " << keep << ", bytes in /tmp/planforge-inspect-mismatch.onnx):\n  whole: " << want << "\n  streaming: " << got);
  }
}

std::vector<std::string> findModels(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      for (auto& p : findModels(path)) out.push_back(p);
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".onnx") == 0) {
      out.push_back(path);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string conformanceDir() {
  const char* env = std::getenv("PLANFORGE_CONFORMANCE_DIR");
  if (env) return env;
  for (const char* c : {"../shared/onnx-conformance", "../../shared/onnx-conformance", "../../../shared/onnx-conformance"}) {
    struct stat st;
    if (::stat(c, &st) == 0) return c;
  }
  return "";
}

// ---- hand-made models ----

std::string varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

std::string lenField(uint32_t field, const std::string& payload) { return varint((field << 3) | 2) + varint(payload.size()) + payload; }

struct Model {
  onnx::ModelProto m;
  explicit Model(int opset = 13) {
    m.set_ir_version(8);
    m.set_producer_name("inspect-test");
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
      if (d >= 0) shape->add_dim()->set_dim_value(d);
      else shape->add_dim()->set_dim_param("batch");
    }
  }
  void input(const std::string& n, std::vector<int64_t> dims, int elem = 1) { io(g().add_input(), n, dims, elem); }
  void output(const std::string& n, std::vector<int64_t> dims = {}, int elem = 1) {
    if (dims.empty()) g().add_output()->set_name(n);
    else io(g().add_output(), n, dims, elem);
  }
  onnx::NodeProto* node(const std::string& op, std::vector<std::string> ins, std::vector<std::string> outs, const std::string& name = "") {
    auto* n = g().add_node();
    n->set_op_type(op);
    if (!name.empty()) n->set_name(name);
    for (auto& i : ins) n->add_input(i);
    for (auto& o : outs) n->add_output(o);
    return n;
  }
  std::string bytes() const { return m.SerializeAsString(); }
};

onnx::TensorProto* rawTensor(onnx::TensorProto* t, const std::string& name, std::vector<int64_t> dims, int dtype, size_t elem) {
  t->set_name(name);
  t->set_data_type(dtype);
  size_t n = 1;
  for (auto d : dims) {
    t->add_dims(d);
    n *= static_cast<size_t>(d);
  }
  std::string raw(n * elem, '\0');
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<char>(i * 7);
  t->set_raw_data(raw);
  return t;
}

// x[1,N] -> MatMul(W[N,M] big) -> Add(B) -> Reshape(shape init) -> y ; plus a Constant and ConstantOfShape.
Model bigModel(int64_t n, int64_t m, bool typedWeights) {
  Model md;
  md.input("x", {-1, n});
  auto* w = md.g().add_initializer();
  if (typedWeights) {
    w->set_name("W");
    w->set_data_type(1);
    w->add_dims(n);
    w->add_dims(m);
    for (int64_t i = 0; i < n * m; ++i) w->add_float_data(static_cast<float>(i % 13));
  } else {
    rawTensor(w, "W", {n, m}, 1, 4);
  }
  auto* b = md.g().add_initializer();
  b->set_name("B");
  b->set_data_type(7);
  b->add_dims(m);
  for (int64_t i = 0; i < m; ++i) b->add_int64_data(i);
  auto* shape = md.g().add_initializer();
  shape->set_name("shape");
  shape->set_data_type(7);
  shape->add_dims(3);
  shape->add_int64_data(-1);
  shape->add_int64_data(2);
  shape->add_int64_data(m / 2);
  md.node("MatMul", {"x", "W"}, {"mm"});
  md.node("Cast", {"B"}, {"bf"})->add_attribute()->set_name("to");
  auto* to = md.g().mutable_node(1)->mutable_attribute(0);
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(1);
  md.node("Add", {"mm", "bf"}, {"sum"});
  md.node("Reshape", {"sum", "shape"}, {"r"});
  // A big Constant feeding Mul (a weight) and a small one feeding Expand (a shape).
  auto* c = md.node("Constant", {}, {"cbig"});
  auto* ca = c->add_attribute();
  ca->set_name("value");
  ca->set_type(onnx::AttributeProto::TENSOR);
  rawTensor(ca->mutable_t(), "cbig_t", {2, m / 2}, 1, 4);
  md.node("Mul", {"r", "cbig"}, {"prod"});
  auto* cs = md.node("Constant", {}, {"eshape"});
  auto* csa = cs->add_attribute();
  csa->set_name("value");
  csa->set_type(onnx::AttributeProto::TENSOR);
  auto* ct = csa->mutable_t();
  ct->set_data_type(7);
  ct->add_dims(3);
  ct->add_int64_data(3);
  ct->add_int64_data(2);
  ct->add_int64_data(m / 2);
  md.node("Expand", {"prod", "eshape"}, {"y"});
  md.node("ConstantOfShape", {"eshape"}, {"zeros"});
  md.output("y");
  md.output("zeros");
  return md;
}

}  // namespace

TEST(inspect_matches_import_on_conformance_models) {
  std::string dir = conformanceDir();
  if (dir.empty()) {
    std::cout << "  (no ../shared/onnx-conformance: skipped)\n";
    return;
  }
  auto models = findModels(dir);
  CHECK(models.size() >= 100);
  for (const auto& p : models) expectSameCheck(p);
  std::cout << "  " << models.size() << " conformance models: same check JSON / error\n";
}

TEST(inspect_matches_import_on_large_payloads) {
  std::string dir = tempDir();
  for (bool typed : {false, true}) {
    Model md = bigModel(64, 512, typed);  // W: 128 KiB
    std::string path = dir + "/big" + (typed ? "-typed" : "-raw") + ".onnx";
    writeFile(path, md.bytes());
    expectSameCheck(path);
    std::string json = checkModelJson(path);
    CHECK(json.find("\"outputs\":[{\"name\":\"y\",\"dtype\":\"float32\",\"shape\":[3,2,256]}") != std::string::npos);
    // The weights stay unread; the values shape inference needs are read from the file.
    for (uint64_t keep : {uint64_t{0}, kInspectKeepTensorBytes}) {
      Graph g = inspectModel(path, ImportOptions{}, nullptr, keep);
      CHECK(g.initializers.at("W").bytes.empty());
      CHECK_EQ(g.initializers.at("cbig").bytes.empty(), keep == 0);  // 2 KiB: kept whole at the default
      CHECK(g.initializers.at("W").shape == (Shape{64, 512}));
      CHECK(g.initializers.at("shape").toInt64Vector() == (std::vector<int64_t>{-1, 2, 256}));
      CHECK(g.initializers.at("zeros").shape == (Shape{3, 2, 256}));
    }
    {
      Graph g = inspectModel(path, ImportOptions{}, nullptr, 0);
      CHECK_EQ(g.initializers.at("B").bytes.size(), size_t{0});  // a Cast input: left unread at keep 0
    }
    // Truncated inside the big payload, and at every 997th byte.
    std::string bytes = md.bytes();
    for (size_t cut = 1; cut < bytes.size(); cut += (cut < 200 ? 1 : 997)) {
      writeFile(path, bytes.substr(0, cut));
      expectSameCheck(path, {0, 4096});
    }
  }
}

TEST(inspect_matches_import_on_payload_errors) {
  std::string dir = tempDir();
  auto check = [&](Model& md, const std::string& name) {
    std::string path = dir + "/" + name + ".onnx";
    writeFile(path, md.bytes());
    expectSameCheck(path);
  };
  {  // raw data of the wrong size
    Model md = bigModel(64, 512, false);
    md.g().mutable_initializer(0)->add_dims(2);
    check(md, "raw-size");
  }
  {  // typed data of the wrong count, wrong typed field for the dtype
    Model md = bigModel(64, 512, true);
    md.g().mutable_initializer(0)->set_data_type(11);
    check(md, "typed-field");
  }
  {  // allocation bomb declared by a large tensor, negative dim, unsupported dtype, segment
    for (int variant = 0; variant < 4; ++variant) {
      Model md = bigModel(64, 512, false);
      auto* w = md.g().mutable_initializer(0);
      if (variant == 0) { w->add_dims(1 << 30); w->add_dims(1 << 30); }
      if (variant == 1) w->set_dims(0, -64);
      if (variant == 2) w->set_data_type(8);
      if (variant == 3) w->mutable_segment()->set_begin(0);
      check(md, "bad-tensor-" + std::to_string(variant));
    }
  }
  {  // sum of constants over the limit: ImportOptions' total (bytes API, small limits)
    Model md = bigModel(64, 512, false);
    ImportOptions opts;
    opts.requireSupportedOps = false;
    opts.maxTotalBytes = 100000;
    const std::string b = md.bytes();
    std::string want = importSummary([&](ImportReport* r) { return importModelBytes(b, "", opts, r); });
    std::string got = importSummary([&](ImportReport* r) { return inspectModelBytes(b, "", opts, r, 0); });
    CHECK_EQ(got, want);
    CHECK(want.find("E_RESOURCE") == 0);
  }
  {  // a large Constant whose value is read (Reshape's shape): loaded from the file
    Model md = bigModel(64, 512, false);
    auto* c = md.node("Constant", {}, {"bigshape"});
    auto* a = c->add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    auto* t = a->mutable_t();
    t->set_data_type(7);
    t->add_dims(3);
    t->add_int64_data(1);
    t->add_int64_data(-1);
    t->add_int64_data(4);
    md.node("Reshape", {"y", "bigshape"}, {"y2"});
    md.output("y2");
    check(md, "constant-shape");
    ImportReport r;
    Graph g = inspectModel(dir + "/constant-shape.onnx", ImportOptions{}, &r, 0);
    CHECK_EQ(g.typeOf("y2")->toString(), std::string("float32[1,384,4]"));
  }
  {  // the same attribute tensor twice (protobuf merges them), subgraph initializers, sparse initializer
    Model md = bigModel(64, 512, false);
    for (int order = 0; order < 2; ++order) {
      // A Constant whose 'value' attribute holds field t twice: a small and a large tensor.
      onnx::TensorProto small;
      small.set_data_type(1);
      small.add_dims(2);
      small.add_dims(256);
      small.set_name("merged");
      onnx::TensorProto large;
      rawTensor(&large, "merged", {2, 256}, 1, 4);
      onnx::AttributeProto attr;
      attr.set_name("value");
      attr.set_type(onnx::AttributeProto::TENSOR);
      std::string ab = attr.SerializeAsString();
      ab += lenField(5, (order ? large : small).SerializeAsString()) + lenField(5, (order ? small : large).SerializeAsString());
      onnx::NodeProto n;
      n.set_op_type("Constant");
      n.add_output("cm");
      std::string nb = n.SerializeAsString() + lenField(5, ab);
      Model copy = md;
      copy.node("Mul", {"y", "cm"}, {"ym"});
      copy.output("ym");
      std::string gb = copy.g().SerializeAsString() + lenField(1, nb);
      onnx::ModelProto noGraph = copy.m;
      noGraph.clear_graph();
      std::string path = dir + "/merged" + std::to_string(order) + ".onnx";
      writeFile(path, noGraph.SerializeAsString() + lenField(7, gb));
      expectSameCheck(path);
    }
    check(md, "plain");
    Model sub = bigModel(8, 64, false);
    auto* ifn = md.node("If", {"cond"}, {"io"});
    auto* ga = ifn->add_attribute();
    ga->set_name("then_branch");
    ga->set_type(onnx::AttributeProto::GRAPH);
    *ga->mutable_g() = sub.g();
    check(md, "subgraph");
    Model sp = bigModel(64, 512, false);
    rawTensor(sp.g().add_sparse_initializer()->mutable_values(), "sv", {5000}, 1, 4);
    check(sp, "sparse");
  }
}

TEST(inspect_matches_import_on_external_data) {
  std::string dir = tempDir();
  std::string data(64 * 512 * 4, '\x01');
  writeFile(dir + "/w.bin", data);
  for (int variant = 0; variant < 6; ++variant) {
    Model md = bigModel(64, 512, false);
    auto* w = md.g().mutable_initializer(0);
    w->clear_raw_data();
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto kv = [&](const std::string& k, const std::string& v) {
      auto* e = w->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    if (variant == 0) kv("location", "w.bin");
    if (variant == 1) kv("location", "../w.bin");
    if (variant == 2) kv("location", "/etc/passwd");
    if (variant == 3) { kv("location", "w.bin"); kv("offset", "8"); }
    if (variant == 4) { kv("location", "w.bin"); kv("length", "12"); }
    if (variant == 5) kv("location", "missing.bin");
    std::string path = dir + "/ext" + std::to_string(variant) + ".onnx";
    writeFile(path, md.bytes());
    expectSameCheck(path);
  }
}

TEST(inspect_matches_import_on_mutations) {
  // Random byte edits of small models (conformance seeds when present, else the hand-made one):
  // whatever protobuf and the importer make of them, the streaming check must agree.
  std::vector<std::string> seeds;
  std::string dir = conformanceDir();
  if (!dir.empty())
    for (const auto& p : findModels(dir + "/pytorch-operator")) {
      std::string b = readFile(p);
      if (b.size() < 4000) seeds.push_back(b);
      if (seeds.size() >= 12) break;
    }
  seeds.push_back(bigModel(4, 8, false).bytes());
  seeds.push_back(bigModel(4, 8, true).bytes());
  std::mt19937 rng(1234);
  int cases = 0;
  for (const auto& seed : seeds) {
    for (int i = 0; i < 150; ++i) {
      std::string b = seed;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        size_t at = rng() % b.size();
        switch (rng() % 4) {
          case 0: b[at] = static_cast<char>(rng()); break;
          case 1: b[at] = static_cast<char>(b[at] ^ (1 << (rng() % 8))); break;
          case 2: b.erase(at, 1 + rng() % 3); break;
          default: b.insert(at, 1, static_cast<char>(rng())); break;
        }
        if (b.empty()) b = "x";
      }
      for (uint64_t keep : {uint64_t{0}, uint64_t{16}}) expectSameBytes(b, keep, "mutant " + std::to_string(cases));
      ++cases;
    }
  }
  std::cout << "  " << cases << " mutants: same import outcome\n";
}
