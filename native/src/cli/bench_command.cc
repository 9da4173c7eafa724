#include "bench_command.h"

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <cmath>
#include <iostream>
#include <stdexcept>
#include <vector>

#include "../core/executor.h"
#include "../core/gpu/cuda_driver.h"
#include "../core/gpu/device.h"
#include "../core/gpu/gpu_executor.h"
#include "../core/json.h"
#include "../core/npy.h"
#include "../core/onnx_import.h"

namespace planforge {
namespace cli {

namespace {

struct GpuUsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> values;
  bool has(const std::string& k) const { return values.count(k) != 0; }
  std::string get(const std::string& k, const std::string& d = "") const {
    auto it = values.find(k);
    return it == values.end() ? d : it->second;
  }
  std::vector<std::string> all(const std::string& k) const {
    std::vector<std::string> v;
    for (auto r = values.equal_range(k); r.first != r.second; ++r.first) v.push_back(r.first->second);
    return v;
  }
};

// initializer_list, not vector: {"--a", "--b"} would pick vector's iterator-pair constructor.
Options parse(int argc, char** argv, std::initializer_list<std::string> flags, std::initializer_list<std::string> valued) {
  Options o;
  for (int i = 2; i < argc; ++i) {
    const std::string s = argv[i];
    if (s.size() > 1 && s[0] == '-') {
      if (std::find(flags.begin(), flags.end(), s) != flags.end()) o.values.emplace(s, "1");
      else if (std::find(valued.begin(), valued.end(), s) != valued.end()) {
        if (i + 1 >= argc) throw GpuUsageError(s + " needs a value");
        o.values.emplace(s, argv[++i]);
      } else {
        throw GpuUsageError("unknown option " + s);
      }
    } else {
      o.positional.push_back(s);
    }
  }
  return o;
}

int intOption(const Options& o, const std::string& k, int dflt, int lo, int hi) {
  if (!o.has(k)) return dflt;
  const std::string v = o.get(k);
  if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos) throw GpuUsageError(k + " needs a number, got '" + v + "'");
  const int n = std::stoi(v);
  if (n < lo || n > hi) throw GpuUsageError(k + " must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  return n;
}

double doubleOption(const Options& o, const std::string& k, double dflt) {
  if (!o.has(k)) return dflt;
  try {
    size_t used = 0;
    const double v = std::stod(o.get(k), &used);
    if (used != o.get(k).size() || !(v >= 0)) throw std::invalid_argument("x");
    return v;
  } catch (const std::exception&) {
    throw GpuUsageError(k + " needs a non-negative number, got '" + o.get(k) + "'");
  }
}

Shape parseDims(const std::string& text, const std::string& what) {
  Shape s;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('x', start);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(start, end - start);
    if (part.empty() || part.size() > 12 || part.find_first_not_of("0123456789") != std::string::npos)
      throw GpuUsageError(what + ": '" + text + "' is not a list of dimensions like 1x3x224x224");
    s.push_back(std::stoll(part));
    start = end + 1;
  }
  return s;
}

std::map<std::string, Tensor> readTensorFiles(const std::vector<std::string>& specs, const std::string& option) {
  std::map<std::string, Tensor> out;
  for (const auto& spec : specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) throw GpuUsageError(option + " needs NAME=FILE, got '" + spec + "'");
    const std::string name = spec.substr(0, eq), file = spec.substr(eq + 1);
    if (out.count(name)) throw GpuUsageError(option + " '" + name + "' given twice");
    const bool pb = file.size() > 3 && file.compare(file.size() - 3, 3, ".pb") == 0;
    out[name] = pb ? readTensorProtoFile(file) : readNpy(file);
  }
  return out;
}

// Deterministic synthetic inputs (benchmarks time kernels, not data): floats in [-1, 1),
// integers in [0, 100) (valid token ids / indices for typical models), booleans true.
Tensor syntheticInput(DataType dtype, const Shape& shape, uint64_t seed) {
  Tensor t(dtype, shape);
  uint64_t x = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  auto next = [&] {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(x >> 33);
  };
  const int64_t n = t.numel();
  switch (dtype) {
    case DataType::kFloat: for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = static_cast<float>(next() % 20000) / 10000.f - 1.f; break;
    case DataType::kInt64: for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = next() % 100; break;
    case DataType::kInt32: for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = static_cast<int32_t>(next() % 100); break;
    case DataType::kBool: for (int64_t i = 0; i < n; ++i) t.data<uint8_t>()[i] = 1; break;
    default: throw BuildError(ErrorCode::kProfile, std::string("cannot synthesize ") + dataTypeName(dtype) + " inputs for a benchmark");
  }
  return t;
}

std::map<std::string, Tensor> benchInputs(const Plan& plan, const Options& o) {
  std::map<std::string, Shape> shapes;
  for (const auto& spec : o.all("--shape")) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) throw GpuUsageError("--shape needs NAME=1x3x224x224, got '" + spec + "'");
    const std::string name = spec.substr(0, eq);
    if (std::find(plan.graph.inputs.begin(), plan.graph.inputs.end(), name) == plan.graph.inputs.end())
      throw GpuUsageError("--shape for unknown input '" + name + "'");
    shapes[name] = parseDims(spec.substr(eq + 1), "--shape " + name);
  }
  std::map<std::string, Tensor> inputs;
  uint64_t seed = 1;
  for (const auto& name : plan.graph.inputs) {
    const ValueType* t = plan.graph.typeOf(name);
    Shape s;
    if (shapes.count(name)) {
      s = shapes[name];
    } else {
      for (const auto& p : plan.profiles)
        if (p.input == name) s = p.opt;
      if (s.empty() && t && t->isStatic()) s = t->dims;
      if (s.empty() && t && t->hasShape && t->dims.empty()) s = {};
      else if (s.empty()) throw GpuUsageError("input '" + name + "' has dynamic dimensions: give --shape " + name + "=...");
    }
    inputs[name] = syntheticInput(t && t->known() ? t->dtype : DataType::kFloat, s, seed++);
  }
  return inputs;
}

struct Stats {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0, min = 0;
};
Stats summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  s.p50 = pct(50);
  s.p90 = pct(90);
  s.p99 = pct(99);
  s.min = v.front();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}
void writeStats(JsonWriter& w, const std::string& key, const Stats& s) {
  w.key(key).beginObject();
  w.field("p50", s.p50).field("p90", s.p90).field("p99", s.p99).field("mean", s.mean).field("min", s.min);
  w.endObject();
}

void writeLayerStats(JsonWriter& w, const gpu::GpuLayerStats& st) {
  w.key("layers").beginObject();
  w.field("gpu", st.gpuLayers).field("alias", st.aliasLayers).field("folded", st.foldedLayers).field("cpu", st.cpuLayers);
  w.field("cpuLayerNames", st.cpuLayerNames);
  w.endObject();
  w.field("cudaGraph", st.cudaGraph).field("cudaGraphNote", st.cudaGraphNote).field("programmaticLaunch", st.programmaticLaunch);
  w.field("arenaBytes", static_cast<uint64_t>(st.arenaBytes)).field("naiveActivationBytes", static_cast<uint64_t>(st.naiveBytes));
  w.field("weightBytes", static_cast<uint64_t>(st.weightBytes));
  w.field("tunedLayers", st.tunedLayers).field("timingCacheHits", st.timingCacheHits).field("tuneSeconds", st.tuneSeconds);
  w.field("cublasLt", st.cublasLt).field("cublasLtLayers", st.cublasLtLayers).field("cublasLtFallbacks", st.cublasLtFallbacks);
  w.field("cublasLtF16Layers", st.cublasLtF16Layers).field("cublasLtComputeTypes", st.cublasLtComputeTypes);
  w.field("convEpiloguesOnLt", st.convEpiloguesOnLt).field("biasMatrixBytes", static_cast<uint64_t>(st.biasMatrixBytes));
  w.field("nhwcLayers", st.nhwcLayers).field("nhwcValues", st.nhwcValues).field("halfValues", st.halfValues).field("tactics", st.tactics);
  w.field("deferredRounds", st.deferredRounds).field("launches", st.launches).field("convBiasAsCRefused", st.convBiasAsCRefused);
}

int cmdBench(int argc, char** argv) {
  const Options o = parse(argc, argv, {"--json", "--no-graph", "--profile-layers", "--autotune", "--cublaslt", "--cublaslt-f16"},
                          {"--shape", "--iterations", "--warmup", "--device-ordinal", "--timing-cache"});
  if (o.positional.size() != 1) throw GpuUsageError("bench needs exactly one PLAN");
  const int iterations = intOption(o, "--iterations", 100, 1, 1000000);
  const int warmup = intOption(o, "--warmup", 10, 0, 1000000);
  const auto t0 = std::chrono::steady_clock::now();
  Plan plan = loadPlanFile(o.positional[0]);
  const std::map<std::string, Tensor> inputs = benchInputs(plan, o);
  gpu::GpuExecutorOptions eo;
  eo.deviceOrdinal = intOption(o, "--device-ordinal", 0, 0, 64);
  eo.cudaGraph = !o.has("--no-graph");
  eo.autotune = o.has("--autotune") || o.has("--timing-cache");
  eo.preferCublasLt = o.has("--cublaslt") || o.has("--cublaslt-f16");
  eo.preferCublasLtF16 = o.has("--cublaslt-f16");
  gpu::TimingCache cache;
  if (o.has("--timing-cache")) {
    cache = gpu::TimingCache::load(o.get("--timing-cache"));
    eo.timingCache = &cache;
  }
  gpu::GpuExecutor ex(plan, eo);
  const gpu::GpuTiming timing = ex.time(inputs, warmup, iterations);
  const gpu::GpuLayerStats st = ex.stats(inputs);
  if (o.has("--timing-cache")) cache.save(o.get("--timing-cache"));
  const double setupS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::pair<std::string, double>> prof, inOrder;
  if (o.has("--profile-layers")) {
    inOrder = prof = ex.profileLayers(inputs, std::min(iterations, 20));
    std::stable_sort(prof.begin(), prof.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  }
  const Stats g = summarize(timing.gpuMs), h = summarize(timing.hostMs);
  const Tensor& first = inputs.begin()->second;
  const int64_t batch = first.shape.empty() ? 1 : first.shape[0];
  const double throughput = g.p50 > 0 ? static_cast<double>(batch) * 1000.0 / g.p50 : 0;
  if (o.has("--json")) {
    JsonWriter w;
    w.beginObject();
    w.field("plan", o.positional[0]).field("targetSm", smName(plan.header.targetSm)).field("precision", plan.header.precision);
    w.field("tuned", plan.header.tuned);
    w.key("device");
    gpu::writeDeviceInfo(w, ex.device());
    w.field("kernels", ex.kernelsFromPlan() ? "plan" : "embedded");
    w.key("inputs").beginObject();
    for (const auto& kv : inputs) w.field(kv.first, shapeToString(kv.second.shape));
    w.endObject();
    w.field("batch", batch).field("iterations", iterations).field("warmup", warmup);
    writeStats(w, "gpuMs", g);
    writeStats(w, "hostMs", h);
    w.field("throughputPerSecond", throughput).field("setupSeconds", setupS);
    writeLayerStats(w, st);
    if (!prof.empty()) {
      w.key("slowestLayers").beginArray();
      for (size_t i = 0; i < prof.size() && i < 25; ++i) w.beginObject().field("layer", prof[i].first).field("ms", prof[i].second).endObject();
      w.endArray();
      // Every layer in execution order: where the time of a launch-bound plan goes.
      w.key("layerProfile").beginArray();
      for (const auto& l : inOrder) w.beginObject().field("layer", l.first).field("ms", l.second).endObject();
      w.endArray();
    }
    w.endObject();
    std::cout << w.str() << "\n";
  } else {
    std::cout << "device " << ex.device().name << " (" << smName(ex.device().sm) << "), plan " << smName(plan.header.targetSm) << " "
              << plan.header.precision << ", batch " << batch << "\n"
              << "GPU ms p50 " << g.p50 << " p90 " << g.p90 << " p99 " << g.p99 << "; host ms p50 " << h.p50 << "; " << throughput << "/s\n"
              << "layers: " << st.gpuLayers << " gpu, " << st.aliasLayers << " alias, " << st.foldedLayers << " folded, " << st.cpuLayers
              << " cpu; cuda graph " << (st.cudaGraph ? "yes" : "no " + st.cudaGraphNote) << "\n";
    for (size_t i = 0; i < prof.size() && i < 25; ++i) std::cout << "  " << prof[i].second << " ms  " << prof[i].first << "\n";
  }
  return 0;
}

// Runs the plan on the GPU and on the CPU reference (or compares with --expected files) and
// reports the largest differences; exit 1 when outside tolerance.
int cmdVerify(int argc, char** argv) {
  const Options o = parse(argc, argv, {"--json", "--synthetic", "--cublaslt", "--cublaslt-f16"}, {"--input", "--expected", "--data-dir", "--shape", "--rtol", "--atol"});
  if (o.positional.size() != 1) throw GpuUsageError("verify needs exactly one PLAN");
  const double rtol = doubleOption(o, "--rtol", 1e-3), atol = doubleOption(o, "--atol", 1e-4);
  Plan plan = loadPlanFile(o.positional[0]);
  std::map<std::string, Tensor> inputs = readTensorFiles(o.all("--input"), "--input");
  std::map<std::string, Tensor> expected = readTensorFiles(o.all("--expected"), "--expected");
  if (o.has("--data-dir")) {
    // ONNX backend test layout: input_K.pb are the graph inputs in order, output_K.pb the outputs.
    const std::string dir = o.get("--data-dir");
    for (size_t k = 0; k < plan.graph.inputs.size(); ++k)
      inputs[plan.graph.inputs[k]] = readTensorProtoFile(dir + "/input_" + std::to_string(k) + ".pb");
    for (size_t k = 0; k < plan.graph.outputs.size(); ++k)
      expected[plan.graph.outputs[k]] = readTensorProtoFile(dir + "/output_" + std::to_string(k) + ".pb");
  }
  if (o.has("--synthetic")) inputs = benchInputs(plan, o);
  std::string reference = "expected files";
  if (expected.empty()) {
    expected = runGraph(plan.graph, inputs);
    reference = "cpu reference";
  }
  gpu::GpuExecutorOptions eo;
  eo.preferCublasLt = o.has("--cublaslt") || o.has("--cublaslt-f16");
  eo.preferCublasLtF16 = o.has("--cublaslt-f16");
  gpu::GpuExecutor ex(plan, eo);
  const std::map<std::string, Tensor> got = ex.run(inputs);
  const gpu::GpuLayerStats st = ex.stats(inputs);
  bool pass = true;
  JsonWriter w;
  w.beginObject().field("plan", o.positional[0]).field("reference", reference);
  w.key("outputs").beginArray();
  for (const auto& kv : expected) {
    auto it = got.find(kv.first);
    w.beginObject().field("name", kv.first);
    if (it == got.end()) {
      w.field("error", "missing").endObject();
      pass = false;
      continue;
    }
    const Tensor& e = kv.second;
    const Tensor& g = it->second;
    bool ok = e.shape == g.shape && e.numel() == g.numel();
    double maxAbs = 0, maxRel = 0;
    int64_t bad = 0;
    if (ok) {
      for (int64_t i = 0; i < e.numel(); ++i) {
        const double a = e.getDouble(i), b = g.getDouble(i);
        if (std::isnan(a) && std::isnan(b)) continue;
        const double d = std::fabs(a - b);
        maxAbs = std::max(maxAbs, d);
        if (std::fabs(a) > 1e-6) maxRel = std::max(maxRel, d / std::fabs(a));
        if (!(d <= atol + rtol * std::fabs(a))) ++bad;
      }
    }
    ok = ok && bad == 0;
    pass = pass && ok;
    w.field("shape", shapeToString(g.shape)).field("maxAbs", maxAbs).field("maxRel", maxRel).field("outsideTolerance", bad).field("pass", ok);
    w.endObject();
  }
  w.endArray();
  w.field("pass", pass);
  writeLayerStats(w, st);
  w.endObject();
  std::cout << w.str() << "\n";
  return pass ? 0 : 1;
}

int cmdDevices(int argc, char** argv) {
  const Options o = parse(argc, argv, {"--json"}, {});
  const std::vector<gpu::DeviceInfo> devs = gpu::listDevices();
  JsonWriter w;
  w.beginArray();
  for (const auto& d : devs) gpu::writeDeviceInfo(w, d);
  w.endArray();
  if (o.has("--json")) {
    std::cout << w.str() << "\n";
  } else {
    for (const auto& d : devs)
      std::cout << d.ordinal << ": " << d.name << " " << smName(d.sm) << ", " << d.multiprocessors << " SMs, " << (d.totalMemory >> 20)
                << " MiB, driver " << d.driverVersion << "\n";
  }
  return 0;
}

// planforge-opt tune PLAN -o TUNED [--shape NAME=DIMS]... [--json]: autotunes on this GPU for
// the given shapes (default: the profiles' opt shapes) and writes the plan with the chosen tactics.
int cmdTune(int argc, char** argv) {
  const Options o = parse(argc, argv, {"--json"}, {"--shape", "-o", "--output", "--device-ordinal", "--timing-cache"});
  if (o.positional.size() != 1) throw GpuUsageError("tune needs exactly one PLAN");
  const std::string outPath = o.has("-o") ? o.get("-o") : o.get("--output");
  if (outPath.empty()) throw GpuUsageError("tune needs -o TUNED_PLAN");
  const auto t0 = std::chrono::steady_clock::now();
  Plan plan = loadPlanFile(o.positional[0]);
  const std::map<std::string, Tensor> inputs = benchInputs(plan, o);
  gpu::TimingCache cache;
  if (o.has("--timing-cache")) cache = gpu::TimingCache::load(o.get("--timing-cache"));
  const gpu::GpuLayerStats st =
      gpu::tunePlan(plan, inputs, intOption(o, "--device-ordinal", 0, 0, 64), o.has("--timing-cache") ? &cache : nullptr);
  if (o.has("--timing-cache")) cache.save(o.get("--timing-cache"));
  std::string sha;
  const std::vector<uint8_t> bytes = serializePlan(plan, &sha);
  writePlanFile(outPath, bytes);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  JsonWriter w;
  w.beginObject().field("plan", outPath).field("planSha256", sha).field("planSize", static_cast<uint64_t>(bytes.size()));
  w.field("seconds", seconds);
  writeLayerStats(w, st);
  w.endObject();
  if (o.has("--json")) std::cout << w.str() << "\n";
  else std::cout << "tuned " << st.tunedLayers << " layer(s) in " << st.tuneSeconds << " s -> " << outPath << "\n";
  return 0;
}

std::string oneLine(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

bool isGpuCommand(const std::string& cmd) { return cmd == "bench" || cmd == "verify" || cmd == "devices" || cmd == "tune"; }

int runGpuCommand(const std::string& cmd, int argc, char** argv) {
  try {
    if (cmd == "bench") return cmdBench(argc, argv);
    if (cmd == "verify") return cmdVerify(argc, argv);
    if (cmd == "devices") return cmdDevices(argc, argv);
    if (cmd == "tune") return cmdTune(argc, argv);
    throw GpuUsageError("unknown command '" + cmd + "'");
  } catch (const GpuUsageError& e) {
    std::cerr << "error E_USAGE: " << oneLine(e.what()) << "\n";
    return 2;
  } catch (const BuildError& e) {
    std::cerr << "error " << errorCodeName(e.code()) << ": " << oneLine(e.what()) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "error E_RESOURCE: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error E_INTERNAL: " << oneLine(e.what()) << "\n";
    return 1;
  }
}

std::map<std::string, Tensor> runPlanOnDevice(const Plan& plan, const std::map<std::string, Tensor>& inputs, const std::string& device,
                                              std::string* deviceUsed) {
  bool gpu = false;
  if (device == "gpu") {
    gpu = true;
  } else if (device == "auto") {
    if (gpu::cudaDriverAvailable()) {
      try {
        gpu = gpu::deviceInfo(0).sm == plan.header.targetSm;
      } catch (const BuildError&) {
        gpu = false;
      }
    }
  } else if (device != "cpu") {
    throw BuildError(ErrorCode::kProfile, "unknown device '" + device + "' (expected cpu, gpu or auto)");
  }
  if (deviceUsed) *deviceUsed = gpu ? "gpu" : "cpu";
  if (!gpu) return runGraph(plan.graph, inputs);
  gpu::GpuExecutor ex(plan);
  return ex.run(inputs);
}

}  // namespace cli
}  // namespace planforge
