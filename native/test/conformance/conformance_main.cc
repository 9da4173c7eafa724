// planforge-conformance: runs the ONNX backend test data (../shared/onnx-conformance) through
// the importer, shape inference and the CPU reference executor, and compares with the
// expected outputs.
//
//   planforge-conformance [--json FILE] [--filter SUBSTR] [--verbose] [--symbolic-inputs] [--cases DIR]... [DATA_DIR]
//
// Cases: DATA_DIR/pytorch-converted/<case>, DATA_DIR/pytorch-operator/<case> (model.onnx +
// test_data_set_N/{input,output}_K.pb) and DATA_DIR/light/light_<name>.onnx with
// light_<name>_output_0.pb (fed a deterministic input: the expected outputs do not depend on it).
// --cases DIR adds every DIR/<case> in the same layout as the PyTorch cases (e.g. models whose
// expected outputs were produced by onnxruntime, see test/native/conformance.test.ts).
// Exit status: 0 when every case passes, 1 when one fails or is unsupported, 2 on usage errors.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/executor.h"
#include "core/graph.h"
#include "core/json.h"
#include "core/onnx_import.h"
#include "core/tensor.h"

using namespace planforge;

namespace {

constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-5;
// Half-precision outputs: the kernels compute in float32 and round once, other runtimes may
// accumulate in half precision; a few half ulps apart is still the same result.
constexpr double kRtolHalf = 1e-2;
constexpr double kAtolHalf = 1e-3;

struct CaseResult {
  std::string suite;
  std::string name;
  std::string status;  // PASS, FAIL, UNSUPPORTED
  std::string detail;
  double seconds = 0;
};

bool isDir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool isFile(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::vector<std::string> listDir(const std::string& p) {
  std::vector<std::string> out;
  DIR* d = opendir(p.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Compares one output; returns "" when equal within tolerance, else a description.
std::string compare(const std::string& name, const Tensor& got, const Tensor& want) {
  if (got.dtype != want.dtype)
    return name + ": dtype " + dataTypeName(got.dtype) + ", expected " + dataTypeName(want.dtype);
  if (got.shape != want.shape)
    return name + ": shape " + shapeToString(got.shape) + ", expected " + shapeToString(want.shape);
  const int64_t n = want.numel();
  const bool isFloat = want.dtype == DataType::kFloat || want.dtype == DataType::kDouble ||
                       want.dtype == DataType::kFloat16 || want.dtype == DataType::kBFloat16;
  const bool isHalf = want.dtype == DataType::kFloat16 || want.dtype == DataType::kBFloat16;
  const double rtol = isHalf ? kRtolHalf : kRtol, atol = isHalf ? kAtolHalf : kAtol;
  int64_t bad = 0, firstBad = -1;
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = got.getDouble(i), w = want.getDouble(i);
    bool ok;
    if (isFloat) {
      if (std::isnan(w)) ok = std::isnan(g);
      else if (std::isinf(w)) ok = g == w;
      else ok = std::fabs(g - w) <= atol + rtol * std::fabs(w);
      if (!std::isnan(g) && !std::isnan(w)) worst = std::max(worst, std::fabs(g - w));
    } else {
      ok = got.getInt64(i) == want.getInt64(i);
    }
    if (!ok) {
      if (firstBad < 0) firstBad = i;
      ++bad;
    }
  }
  if (bad == 0) return "";
  std::ostringstream os;
  os << name << ": " << bad << "/" << n << " elements differ (max abs diff " << worst << "; first at " << firstBad
     << ": got " << got.getDouble(firstBad) << ", expected " << want.getDouble(firstBad) << ")";
  return os.str();
}

// Inferred (static) dims of a graph output must agree with what the executor produced.
std::string checkInferred(const Graph& g, const std::string& name, const Tensor& got) {
  const ValueType* vt = g.typeOf(name);
  if (!vt || !vt->known()) return "";
  if (vt->dtype != got.dtype)
    return name + ": inferred dtype " + dataTypeName(vt->dtype) + " but computed " + dataTypeName(got.dtype);
  if (!vt->hasShape) return "";
  bool ok = vt->dims.size() == got.shape.size();
  for (size_t i = 0; ok && i < got.shape.size(); ++i) ok = vt->dims[i] < 0 || vt->dims[i] == got.shape[i];
  if (!ok) return name + ": inferred shape " + vt->toString() + " but computed " + shapeToString(got.shape);
  return "";
}

// --symbolic-inputs: every dim of every runtime input is made unknown before shape inference,
// so that inference is exercised on symbolic shapes (the data fed stays the same).
bool gSymbolicInputs = false;

// Imports without failing on unsupported ops so that they can be reported as such.
bool importForTest(const std::string& model, Graph* g, CaseResult* r) {
  ImportOptions opts;
  opts.requireSupportedOps = false;
  opts.inferShapes = false;
  *g = importModel(model, opts);
  std::string unsupported = unsupportedOpsReport(*g);
  if (!unsupported.empty()) {
    r->status = "UNSUPPORTED";
    r->detail = unsupported;
    return false;
  }
  if (gSymbolicInputs) {
    for (const auto& name : g->inputs) {
      auto it = g->types.find(name);
      if (it == g->types.end() || !it->second.hasShape) continue;
      for (size_t d = 0; d < it->second.dims.size(); ++d) {
        it->second.dims[d] = -1;
        if (d < it->second.dimParams.size()) it->second.dimParams[d] = name + "_d" + std::to_string(d);
      }
    }
  }
  inferShapes(*g);
  return true;
}

std::string runAndCompare(const Graph& g, const std::map<std::string, Tensor>& inputs, const std::vector<Tensor>& expected) {
  std::map<std::string, Tensor> outs = runGraph(g, inputs);
  if (expected.size() > g.outputs.size())
    return "expected " + std::to_string(expected.size()) + " outputs, the model has " + std::to_string(g.outputs.size());
  std::string problems;
  for (size_t k = 0; k < expected.size(); ++k) {
    const std::string& name = g.outputs[k];
    auto it = outs.find(name);
    if (it == outs.end()) return "output '" + name + "' was not produced";
    std::string p = compare(name, it->second, expected[k]);
    if (p.empty()) p = checkInferred(g, name, it->second);
    if (!p.empty()) problems += (problems.empty() ? "" : "; ") + p;
  }
  return problems;
}

CaseResult runDataCase(const std::string& suite, const std::string& dir, const std::string& name) {
  CaseResult r{suite, name, "PASS", "", 0};
  Graph g;
  if (!importForTest(dir + "/model.onnx", &g, &r)) return r;
  int sets = 0;
  for (const auto& entry : listDir(dir)) {
    if (entry.rfind("test_data_set_", 0) != 0) continue;
    const std::string ds = dir + "/" + entry;
    std::map<std::string, Tensor> inputs;
    for (size_t k = 0; isFile(ds + "/input_" + std::to_string(k) + ".pb"); ++k) {
      if (k >= g.inputs.size())
        throw BuildError(ErrorCode::kInvalidModel, entry + " has more inputs than the model (" + std::to_string(g.inputs.size()) + ")");
      inputs[g.inputs[k]] = readTensorProtoFile(ds + "/input_" + std::to_string(k) + ".pb");
    }
    std::vector<Tensor> expected;
    for (size_t k = 0; isFile(ds + "/output_" + std::to_string(k) + ".pb"); ++k)
      expected.push_back(readTensorProtoFile(ds + "/output_" + std::to_string(k) + ".pb"));
    std::string p = runAndCompare(g, inputs, expected);
    if (!p.empty()) {
      r.status = "FAIL";
      r.detail += (r.detail.empty() ? "" : "; ") + entry + ": " + p;
    }
    ++sets;
  }
  if (sets == 0) {
    r.status = "FAIL";
    r.detail = "no test_data_set_N directory";
  }
  return r;
}

// Deterministic input for the light models: a smooth ramp in [-1, 1] (the expected outputs were
// produced by models whose weights are all one constant, so they do not depend on the input).
Tensor deterministicInput(const Graph& g, const std::string& name, const Shape& dims) {
  const ValueType* vt = g.typeOf(name);
  if (!vt) throw BuildError(ErrorCode::kProfile, "input '" + name + "' has no type to make a deterministic input for");
  Tensor t(vt->dtype, dims);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double v = std::sin(static_cast<double>(i) * 0.001);
    switch (t.dtype) {
      case DataType::kFloat: t.data<float>()[i] = static_cast<float>(v); break;
      case DataType::kDouble: t.data<double>()[i] = v; break;
      case DataType::kInt64: t.data<int64_t>()[i] = i % 7; break;
      case DataType::kInt32: t.data<int32_t>()[i] = static_cast<int32_t>(i % 7); break;
      default: break;  // zeros
    }
  }
  return t;
}

CaseResult runLightCase(const std::string& dir, const std::string& file) {
  const std::string base = file.substr(0, file.size() - 5);  // strip .onnx
  CaseResult r{"light", base, "PASS", "", 0};
  Graph g;
  // The declared input shapes, before --symbolic-inputs hides them from inference.
  std::map<std::string, Shape> declared;
  {
    ImportOptions opts;
    opts.requireSupportedOps = false;
    opts.inferShapes = false;
    Graph plain = importModel(dir + "/" + file, opts);
    for (const auto& in : plain.inputs) {
      const ValueType* vt = plain.typeOf(in);
      if (!vt || !vt->isStatic())
        throw BuildError(ErrorCode::kProfile, "input '" + in + "' has no static shape to make a deterministic input for");
      declared[in] = vt->dims;
    }
  }
  if (!importForTest(dir + "/" + file, &g, &r)) return r;
  std::map<std::string, Tensor> inputs;
  for (const auto& in : g.inputs) inputs[in] = deterministicInput(g, in, declared[in]);
  std::vector<Tensor> expected;
  for (size_t k = 0; isFile(dir + "/" + base + "_output_" + std::to_string(k) + ".pb"); ++k)
    expected.push_back(readTensorProtoFile(dir + "/" + base + "_output_" + std::to_string(k) + ".pb"));
  if (expected.empty()) {
    r.status = "FAIL";
    r.detail = "no " + base + "_output_0.pb";
    return r;
  }
  std::string p = runAndCompare(g, inputs, expected);
  if (!p.empty()) {
    r.status = "FAIL";
    r.detail = p;
  }
  return r;
}

template <typename F>
CaseResult timed(const std::string& suite, const std::string& name, F f) {
  auto t0 = std::chrono::steady_clock::now();
  CaseResult r;
  try {
    r = f();
  } catch (const BuildError& e) {
    r = CaseResult{suite, name, "FAIL", std::string(errorCodeName(e.code())) + ": " + e.what(), 0};
    // An import that names unsupported ops is still "unsupported", not a failure.
    if (e.code() == ErrorCode::kUnsupportedOp) r.status = "UNSUPPORTED";
  } catch (const std::exception& e) {
    r = CaseResult{suite, name, "FAIL", std::string("exception: ") + e.what(), 0};
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

void usage() {
  std::cerr << "usage: planforge-conformance [--json FILE] [--filter SUBSTR] [--verbose] [--symbolic-inputs] [--cases DIR]... [DATA_DIR]\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string jsonPath, filter, dataDir;
  std::vector<std::string> caseDirs;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) jsonPath = argv[++i];
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (a == "--cases" && i + 1 < argc) caseDirs.push_back(argv[++i]);
    else if (a == "--verbose") verbose = true;
    else if (a == "--symbolic-inputs") gSymbolicInputs = true;
    else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      usage();
      return 2;
    } else dataDir = a;
  }
  if (dataDir.empty() && caseDirs.empty()) {
    usage();
    return 2;
  }
  for (const auto& d : caseDirs)
    if (!isDir(d)) {
      std::cerr << "planforge-conformance: no such directory: " << d << "\n";
      return 2;
    }
  if (!dataDir.empty() && !isDir(dataDir)) {
    std::cerr << "planforge-conformance: no such directory: " << dataDir << "\n";
    return 2;
  }
  std::vector<CaseResult> results;
  auto report = [&](const CaseResult& r) {
    std::cout << r.status << " " << r.suite << "/" << r.name;
    if (r.status == "UNSUPPORTED") std::cout << " (" << r.detail << ")";
    else if (r.status == "FAIL") std::cout << ": " << r.detail;
    if (verbose) std::cout << " [" << r.seconds << " s]";
    std::cout << std::endl;
    results.push_back(r);
  };
  std::vector<std::pair<std::string, std::string>> suites;  // name, directory
  if (!dataDir.empty())
    for (const std::string suite : {"pytorch-converted", "pytorch-operator"}) suites.push_back({suite, dataDir + "/" + suite});
  for (const auto& d : caseDirs) {
    std::string base = d;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    suites.push_back({base.substr(base.find_last_of('/') + 1), base});
  }
  for (const auto& entry : suites) {
    const std::string suite = entry.first, root = entry.second;
    for (const auto& name : listDir(root)) {
      const std::string dir = root + "/" + name;
      if (!isFile(dir + "/model.onnx")) continue;
      if (!filter.empty() && (suite + "/" + name).find(filter) == std::string::npos) continue;
      report(timed(suite, name, [&] { return runDataCase(suite, dir, name); }));
    }
  }
  const std::string light = dataDir + "/light";
  for (const auto& file : dataDir.empty() ? std::vector<std::string>{} : listDir(light)) {
    if (file.size() < 6 || file.compare(file.size() - 5, 5, ".onnx") != 0) continue;
    if (!filter.empty() && ("light/" + file).find(filter) == std::string::npos) continue;
    report(timed("light", file.substr(0, file.size() - 5), [&] { return runLightCase(light, file); }));
  }
  int passed = 0, failed = 0, unsupported = 0;
  for (const auto& r : results) {
    if (r.status == "PASS") ++passed;
    else if (r.status == "FAIL") ++failed;
    else ++unsupported;
  }
  std::cout << "conformance: " << results.size() << " cases, " << passed << " passed, " << failed << " failed, "
            << unsupported << " unsupported" << std::endl;
  if (!jsonPath.empty()) {
    JsonWriter w;
    w.beginObject();
    w.field("cases", static_cast<int64_t>(results.size()));
    w.field("passed", static_cast<int64_t>(passed));
    w.field("failed", static_cast<int64_t>(failed));
    w.field("unsupported", static_cast<int64_t>(unsupported));
    w.key("results").beginArray();
    for (const auto& r : results) {
      w.beginObject();
      w.field("suite", r.suite);
      w.field("name", r.name);
      w.field("status", r.status);
      w.field("detail", r.detail);
      w.field("seconds", r.seconds);
      w.endObject();
    }
    w.endArray();
    w.endObject();
    std::ofstream f(jsonPath);
    f << w.str() << "\n";
    if (!f) {
      std::cerr << "planforge-conformance: cannot write " << jsonPath << "\n";
      return 2;
    }
  }
  return failed == 0 && unsupported == 0 ? 0 : 1;
}
