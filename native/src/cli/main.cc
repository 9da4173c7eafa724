// planforge-opt: the optimizer as a command-line tool (same core as the Node binding, no Node).
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "../core/builder.h"
#include "../core/executor.h"
#include "../core/gpu/timing_cache.h"
#include "../core/json.h"
#include "../core/npy.h"
#include "../core/onnx_import.h"
#include "../core/plan/plan.h"
#include "../core/reports.h"
#include "../core/version.h"
#include "bench_command.h"

using namespace planforge;

namespace {

const char* kUsage =
    "usage:\n"
    "  planforge-opt build MODEL.onnx --target sm_80|sm_86|sm_87|sm_90 --precision fp32|fp16|int8 -o PLAN\n"
    "        [--profile INPUT:min=1x3x224x224,opt=8x3x224x224,max=32x3x224x224]...\n"
    "        [--layer-precision NODE=fp32|fp16|int8]... [--spec-hash HASH] [--model-sha256 HEX]\n"
    "        [--calib DIR [--calib-method entropy|minmax|percentile] [--percentile 99.99]] [--calib-cache FILE.json]\n"
    "        [--passes id,id,...] [--max-tensor-bytes N] [--max-total-bytes N] [--json] [--progress]\n"
    "  planforge-opt run PLAN --input NAME=FILE.npy... --output-dir DIR [--expected-sm sm_90] [--device cpu|gpu|auto]\n"
    "  planforge-opt bench PLAN [--shape NAME=1x3x224x224]... [--iterations N] [--warmup N] [--autotune] [--json]\n"
    "  planforge-opt verify PLAN --input NAME=FILE... | --data-dir DIR | --synthetic [--rtol R] [--atol A] [--json]\n"
    "  planforge-opt tune PLAN -o TUNED_PLAN [--shape NAME=DIMS]... [--timing-cache FILE] [--json]\n"
    "  planforge-opt timing-cache merge -o OUT CACHE... [--json]   (keeps this optimizer version's entries)\n"
    "  planforge-opt devices [--json]\n"
    "  planforge-opt eval MODEL.onnx --input NAME=FILE.npy|FILE.pb... --output-dir DIR\n"
    "  planforge-opt inspect PLAN [--json]\n"
    "  planforge-opt check MODEL.onnx [--json]\n"
    "  planforge-opt passes | ops | version\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string oneLine(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// Parses "1x3x224x224".
Shape parseDims(const std::string& text, const std::string& what) {
  Shape s;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('x', start);
    if (end == std::string::npos) end = text.size();
    std::string part = text.substr(start, end - start);
    if (part.empty() || part.size() > 12 || part.find_first_not_of("0123456789") != std::string::npos)
      throw UsageError(what + ": '" + text + "' is not a list of dimensions like 1x3x224x224");
    s.push_back(std::stoll(part));
    start = end + 1;
  }
  return s;
}

// "input:min=1x3x8x8,opt=4x3x8x8,max=8x3x8x8"
std::pair<std::string, InputProfile> parseProfile(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) throw UsageError("--profile needs INPUT:min=...,opt=...,max=..., got '" + text + "'");
  std::string name = text.substr(0, colon);
  InputProfile p;
  bool hasMin = false, hasOpt = false, hasMax = false;
  std::string rest = text.substr(colon + 1);
  size_t start = 0;
  while (start < rest.size()) {
    size_t end = rest.find(',', start);
    if (end == std::string::npos) end = rest.size();
    std::string kv = rest.substr(start, end - start);
    size_t eq = kv.find('=');
    if (eq == std::string::npos) throw UsageError("--profile for '" + name + "': expected min=/opt=/max=, got '" + kv + "'");
    std::string key = kv.substr(0, eq);
    Shape dims = parseDims(kv.substr(eq + 1), "--profile " + name + " " + key);
    if (key == "min") { p.min = dims; hasMin = true; }
    else if (key == "opt") { p.opt = dims; hasOpt = true; }
    else if (key == "max") { p.max = dims; hasMax = true; }
    else throw UsageError("--profile for '" + name + "': unknown key '" + key + "' (expected min, opt, max)");
    start = end + 1;
  }
  if (!hasMin || !hasOpt || !hasMax) throw UsageError("--profile for '" + name + "' needs min, opt and max");
  return {name, p};
}

std::string sanitize(const std::string& name) {
  std::string s;
  for (char c : name) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  if (s.empty() || s[0] == '.') s = "_" + s;
  return s;
}

void ensureDir(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw BuildError(ErrorCode::kIo, dir + " exists and is not a directory");
    return;
  }
  if (::mkdir(dir.c_str(), 0755) != 0) throw BuildError(ErrorCode::kIo, "cannot create " + dir + ": " + std::strerror(errno));
}

struct Args {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> options;
  bool has(const std::string& k) const { return options.count(k) != 0; }
  std::string get(const std::string& k, const std::string& dflt = "") const {
    auto it = options.find(k);
    return it == options.end() ? dflt : it->second;
  }
  std::vector<std::string> all(const std::string& k) const {
    std::vector<std::string> v;
    auto range = options.equal_range(k);
    for (auto it = range.first; it != range.second; ++it) v.push_back(it->second);
    return v;
  }
};

Args parseArgs(int argc, char** argv, int start, const std::vector<std::string>& flags, const std::vector<std::string>& valued) {
  Args a;
  for (int i = start; i < argc; ++i) {
    std::string s = argv[i];
    if (s.size() > 1 && s[0] == '-') {
      if (std::find(flags.begin(), flags.end(), s) != flags.end()) {
        a.options.emplace(s, "1");
      } else if (std::find(valued.begin(), valued.end(), s) != valued.end()) {
        if (i + 1 >= argc) throw UsageError(s + " needs a value");
        a.options.emplace(s, argv[++i]);
      } else {
        throw UsageError("unknown option " + s);
      }
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

std::map<std::string, Tensor> readInputs(const Args& a) {
  std::map<std::string, Tensor> inputs;
  for (const auto& spec : a.all("--input")) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("--input needs NAME=FILE, got '" + spec + "'");
    std::string name = spec.substr(0, eq), file = spec.substr(eq + 1);
    if (inputs.count(name)) throw UsageError("input '" + name + "' given twice");
    bool pb = file.size() > 3 && file.compare(file.size() - 3, 3, ".pb") == 0;
    inputs[name] = pb ? readTensorProtoFile(file) : readNpy(file);
  }
  return inputs;
}

void writeOutputs(const std::map<std::string, Tensor>& outputs, const std::string& dir) {
  ensureDir(dir);
  for (const auto& kv : outputs) {
    std::string path = dir + "/" + sanitize(kv.first) + ".npy";
    writeNpy(path, kv.second);
    std::cout << kv.first << ": " << dataTypeName(kv.second.dtype) << " " << shapeToString(kv.second.shape) << " -> " << path << "\n";
  }
}

int cmdBuild(int argc, char** argv) {
  Args a = parseArgs(argc, argv, 2, {"--json", "--progress"},
                     {"--target", "--precision", "--profile", "--calib", "--calib-cache", "--calib-method", "--percentile", "--layer-precision",
                      "-o", "--output", "--spec-hash", "--model-sha256", "--passes", "--max-tensor-bytes", "--max-total-bytes"});
  if (a.positional.size() != 1) throw UsageError("build needs exactly one MODEL.onnx");
  std::string out = a.has("-o") ? a.get("-o") : a.get("--output");
  if (out.empty()) throw UsageError("build needs -o PLAN");
  if (!a.has("--target")) throw UsageError("build needs --target sm_80|sm_86|sm_87|sm_90");
  BuilderConfig c;
  c.targetSm = parseSm(a.get("--target"));
  if (!c.targetSm) throw UsageError("unknown --target '" + a.get("--target") + "' (expected sm_80, sm_86, sm_87 or sm_90)");
  c.precision = a.get("--precision", "fp32");
  if (!isValidPrecision(c.precision)) throw UsageError("unknown --precision '" + c.precision + "' (expected fp32, fp16 or int8)");
  for (const auto& p : a.all("--profile")) {
    auto kv = parseProfile(p);
    if (c.profiles.count(kv.first)) throw UsageError("two --profile options for input '" + kv.first + "'");
    c.profiles[kv.first] = kv.second;
  }
  for (const auto& lp : a.all("--layer-precision")) {
    size_t eq = lp.rfind('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("--layer-precision needs NAME=fp32|fp16|int8, got '" + lp + "'");
    std::string prec = lp.substr(eq + 1);
    if (!isValidPrecision(prec)) throw UsageError("--layer-precision " + lp + ": unknown precision '" + prec + "'");
    c.layerPrecisions[lp.substr(0, eq)] = prec;
  }
  if (a.has("--calib") || a.has("--calib-cache")) {
    c.calibration.enabled = true;
    c.calibration.dataDir = a.get("--calib");
    c.calibration.cacheFile = a.get("--calib-cache");
  } else if (a.has("--calib-method") || a.has("--percentile")) {
    throw UsageError("--calib-method and --percentile need --calib DIR");
  }
  c.calibration.method = a.get("--calib-method", "entropy");
  if (c.calibration.method != "entropy" && c.calibration.method != "minmax" && c.calibration.method != "percentile")
    throw UsageError("unknown --calib-method '" + c.calibration.method + "' (expected entropy, minmax or percentile)");
  if (a.has("--percentile")) {
    char* end = nullptr;
    c.calibration.percentile = std::strtod(a.get("--percentile").c_str(), &end);
    if (*end || !(c.calibration.percentile > 50 && c.calibration.percentile <= 100))
      throw UsageError("--percentile must be a number in (50, 100]");
  }
  auto bytesOption = [&](const char* name, uint64_t& target) {
    if (!a.has(name)) return;
    std::string v = a.get(name);
    if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos || std::stoull(v) == 0)
      throw UsageError(std::string(name) + " must be a positive number of bytes");
    target = std::stoull(v);
  };
  bytesOption("--max-tensor-bytes", c.importOptions.maxTensorBytes);
  bytesOption("--max-total-bytes", c.importOptions.maxTotalBytes);
  c.specHash = a.get("--spec-hash");
  c.modelSha256 = a.get("--model-sha256");
  if (a.has("--passes")) {
    std::string list = a.get("--passes");
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(',', start);
      if (end == std::string::npos) end = list.size();
      std::string id = list.substr(start, end - start);
      if (!id.empty()) {
        if (!PassRegistry::instance().find(id)) throw UsageError("unknown pass '" + id + "' (see planforge-opt passes)");
        c.passes.push_back(id);
      }
      start = end + 1;
    }
  }
  const bool json = a.has("--json");
  if (a.has("--progress")) c.progress = [](const std::string& stage, double pct) { std::cerr << "[" << static_cast<int>(pct) << "%] " << stage << "\n"; };
  BuildSummary s = buildPlan(a.positional[0], out, c);
  if (json) {
    std::cout << buildSummaryJson(s) << "\n";
    return 0;
  }
  std::cout << "plan " << out << ": " << smName(s.header.targetSm) << " " << s.header.precision << ", " << s.layers << " layers (" << s.nodesBefore
            << " ONNX nodes), " << s.planSize << " bytes, sha256 " << s.planSha256 << "\n";
  for (const auto& p : s.passes) {
    std::cout << "  " << p.id << ": " << p.nodesBefore << " -> " << p.nodesAfter << " nodes";
    if (!p.changes.empty()) std::cout << ", " << p.changes.size() << " change(s)";
    std::cout << "\n";
    for (const auto& ch : p.changes) std::cout << "    - " << ch << "\n";
  }
  return 0;
}

int cmdRun(int argc, char** argv) {
  Args a = parseArgs(argc, argv, 2, {}, {"--input", "--output-dir", "--expected-sm", "--device"});
  if (a.positional.size() != 1) throw UsageError("run needs exactly one PLAN");
  if (!a.has("--output-dir")) throw UsageError("run needs --output-dir DIR");
  PlanLoadOptions lo;
  if (a.has("--expected-sm")) {
    lo.expectedSm = parseSm(a.get("--expected-sm"));
    if (!lo.expectedSm) throw UsageError("unknown --expected-sm '" + a.get("--expected-sm") + "'");
  }
  Plan plan = loadPlanFile(a.positional[0], lo);
  std::map<std::string, Tensor> inputs = readInputs(a);
  checkInputsAgainstProfiles(plan, inputs);
  const std::string device = a.get("--device", "cpu");
  if (device != "cpu" && device != "gpu" && device != "auto") throw UsageError("--device must be cpu, gpu or auto, got '" + device + "'");
  writeOutputs(cli::runPlanOnDevice(plan, inputs, device), a.get("--output-dir"));
  return 0;
}

int cmdEval(int argc, char** argv) {
  Args a = parseArgs(argc, argv, 2, {}, {"--input", "--output-dir"});
  if (a.positional.size() != 1) throw UsageError("eval needs exactly one MODEL.onnx");
  if (!a.has("--output-dir")) throw UsageError("eval needs --output-dir DIR");
  Graph g = importModel(a.positional[0]);
  std::map<std::string, Tensor> inputs = readInputs(a);
  writeOutputs(runGraph(g, inputs), a.get("--output-dir"));
  return 0;
}

int cmdInspect(int argc, char** argv) {
  Args a = parseArgs(argc, argv, 2, {"--json"}, {});
  if (a.positional.size() != 1) throw UsageError("inspect needs exactly one PLAN");
  Plan plan = loadPlanFile(a.positional[0]);
  struct stat st;
  uint64_t size = ::stat(a.positional[0].c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  if (a.has("--json")) {
    std::cout << planInfoJson(plan, size) << "\n";
    return 0;
  }
  const PlanHeader& h = plan.header;
  std::cout << "plan format v" << h.formatVersion << ", optimizer " << h.optimizerVersion << "\n"
            << "target " << smName(h.targetSm) << ", precision " << h.precision << (h.tuned ? ", tuned" : "") << "\n"
            << "model sha256 " << h.modelSha256 << "\nspec hash " << (h.specHash.empty() ? "-" : h.specHash) << "\n"
            << plan.graph.nodes.size() << " layers (from " << h.nodesBefore << " ONNX nodes), " << plan.graph.initializers.size()
            << " weights, " << size << " bytes\n"
            << "kernels: " << kernelsSummary(plan) << "\n";
  for (const auto& p : plan.profiles)
    std::cout << "profile " << p.input << ": min " << shapeToString(p.min) << " opt " << shapeToString(p.opt) << " max " << shapeToString(p.max) << "\n";
  for (const auto& n : plan.graph.nodes) std::cout << "  " << n.name << " " << n.opType << " [" << n.precision << "]\n";
  return 0;
}

int cmdCheck(int argc, char** argv) {
  Args a = parseArgs(argc, argv, 2, {"--json"}, {});
  if (a.positional.size() != 1) throw UsageError("check needs exactly one MODEL.onnx");
  if (a.has("--json")) {
    std::cout << checkModelJson(a.positional[0]) << "\n";
    return 0;
  }
  ImportOptions opts;
  opts.requireSupportedOps = false;
  ImportReport report;
  Graph g = importModel(a.positional[0], opts, &report);
  std::cout << "model " << a.positional[0] << ": IR " << g.irVersion << ", opset " << g.opset << ", producer "
            << (g.producerName.empty() ? "-" : g.producerName) << ", graph " << (g.name.empty() ? "-" : g.name) << "\n"
            << report.nodeCount << " nodes, " << report.initializerCount << " initializers\n";
  for (const auto& n : g.inputs) std::cout << "input  " << n << ": " << (g.typeOf(n) ? g.typeOf(n)->toString() : "?") << "\n";
  for (const auto& n : g.outputs) std::cout << "output " << n << ": " << (g.typeOf(n) ? g.typeOf(n)->toString() : "?") << "\n";
  std::string ops;
  for (const auto& o : report.opTypes) ops += (ops.empty() ? "" : " ") + o;
  std::cout << "ops: " << ops << "\n";
  if (!report.unsupportedOps.empty()) std::cout << "unsupported: " << report.unsupportedOps << "\n";
  return 0;
}

// planforge-opt timing-cache merge -o OUT CACHE...: merges timing caches (per key the faster
// entry wins: commutative and idempotent, so workers can each publish their own file and
// every reader merges them all) and drops entries of other optimizer versions. Runs without a GPU.
int cmdTimingCache(int argc, char** argv) {
  if (argc < 3 || std::string(argv[2]) != "merge") throw UsageError("timing-cache needs the subcommand merge");
  std::string out;
  bool json = false;
  std::vector<std::string> inputs;
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-o" || a == "--output") {
      if (i + 1 >= argc) throw UsageError(a + " needs a file");
      out = argv[++i];
    } else if (a == "--json") {
      json = true;
    } else if (a.size() > 1 && a[0] == '-') {
      throw UsageError("unknown option " + a);
    } else {
      inputs.push_back(a);
    }
  }
  if (out.empty()) throw UsageError("timing-cache merge needs -o OUT");
  gpu::TimingCache merged;
  size_t read = 0;
  for (const auto& in : inputs) {
    struct stat st;
    if (::stat(in.c_str(), &st) != 0) throw BuildError(ErrorCode::kParse, "timing cache " + in + ": " + std::strerror(errno));
    try {
      merged.merge(gpu::TimingCache::load(in));
    } catch (const BuildError& e) {
      throw BuildError(e.code(), in + ": " + e.what());
    }
    ++read;
  }
  const size_t dropped = merged.pruneOtherVersions(kOptimizerVersion);
  merged.save(out);
  if (json) {
    JsonWriter w;
    w.beginObject().field("output", out).field("inputs", static_cast<uint64_t>(read)).field("entries", static_cast<uint64_t>(merged.size()));
    w.field("droppedOtherVersions", static_cast<uint64_t>(dropped)).endObject();
    std::cout << w.str() << "\n";
  } else {
    std::cout << "merged " << read << " cache(s): " << merged.size() << " entries (" << dropped << " of other optimizer versions dropped) -> " << out << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  std::string cmd = argv[1];
  try {
    if (cmd == "build") return cmdBuild(argc, argv);
    if (cmd == "run") return cmdRun(argc, argv);
    if (cli::isGpuCommand(cmd)) return cli::runGpuCommand(cmd, argc, argv);
    if (cmd == "eval") return cmdEval(argc, argv);
    if (cmd == "inspect") return cmdInspect(argc, argv);
    if (cmd == "check") return cmdCheck(argc, argv);
    if (cmd == "timing-cache") return cmdTimingCache(argc, argv);
    if (cmd == "version" || cmd == "--version") {
      std::cout << kOptimizerVersion << "\n";
      return 0;
    }
    if (cmd == "passes") {
      for (const auto& p : PassRegistry::instance().all())
        std::cout << p.id << (p.enabledByDefault ? "" : " (off by default)") << ": " << p.description << "\n";
      return 0;
    }
    if (cmd == "ops") {
      for (const auto& n : OpRegistry::instance().names()) std::cout << n << "\n";
      return 0;
    }
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      std::cout << kUsage;
      return 0;
    }
    throw UsageError("unknown command '" + cmd + "'");
  } catch (const UsageError& e) {
    std::cerr << "error E_USAGE: " << oneLine(e.what()) << " (see planforge-opt help)\n";
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
