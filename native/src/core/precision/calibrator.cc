#include "calibrator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "../executor.h"
#include "../json.h"
#include "../npy.h"

namespace planforge {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- thresholds

int entropyThresholdBin(const std::vector<double>& hist) {
  // NVIDIA's algorithm as pytorch-quantization implements it for TensorRT: for every candidate
  // threshold i (in bins), P = hist[0, i) with the clipped outliers added to its last bin; Q =
  // hist[0, i) merged into 128 equal-width levels (level of bin k = floor(k * 128 / i)), each
  // level's mass spread evenly over its non-empty bins; pick the i with the smallest KL(P || Q)
  // (ties: the larger i). A Q that is empty where P is not gives an infinite divergence.
  const int nbins = static_cast<int>(hist.size());
  if (nbins <= kInt8QuantizedBins) return nbins;
  double total = 0;
  for (double v : hist) total += v;
  if (total <= 0) return nbins;
  std::vector<double> suffix(static_cast<size_t>(nbins) + 1, 0.0);  // suffix[i] = sum(hist[i:])
  for (int i = nbins - 1; i >= 0; --i) suffix[static_cast<size_t>(i)] = suffix[static_cast<size_t>(i) + 1] + hist[static_cast<size_t>(i)];
  int best = nbins;
  double bestKl = std::numeric_limits<double>::infinity();
  std::vector<double> levelMass(kInt8QuantizedBins), q;
  std::vector<int> levelBins(kInt8QuantizedBins);
  for (int i = kInt8QuantizedBins; i <= nbins; ++i) {
    std::fill(levelMass.begin(), levelMass.end(), 0.0);
    std::fill(levelBins.begin(), levelBins.end(), 0);
    auto level = [&](int k) { return static_cast<int>(static_cast<int64_t>(k) * kInt8QuantizedBins / i); };
    for (int k = 0; k < i; ++k) {
      const double h = hist[static_cast<size_t>(k)];
      if (h == 0) continue;
      levelMass[static_cast<size_t>(level(k))] += h;
      ++levelBins[static_cast<size_t>(level(k))];
    }
    q.assign(static_cast<size_t>(i), 0.0);
    double qSum = 0;
    for (int k = 0; k < i; ++k) {
      if (hist[static_cast<size_t>(k)] == 0) continue;
      const size_t l = static_cast<size_t>(level(k));
      q[static_cast<size_t>(k)] = levelMass[l] / levelBins[l];
      qSum += q[static_cast<size_t>(k)];
    }
    const double pSum = total;  // P holds every count (outliers folded into its last bin)
    double kl = 0;
    for (int k = 0; k < i && std::isfinite(kl); ++k) {
      double p = hist[static_cast<size_t>(k)];
      if (k == i - 1) p += suffix[static_cast<size_t>(i)];
      if (p == 0) continue;
      const double qk = q[static_cast<size_t>(k)];
      if (qk == 0) {
        kl = std::numeric_limits<double>::infinity();
        break;
      }
      kl += (p / pSum) * std::log((p / pSum) / (qk / qSum));
    }
    if (kl <= bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return best;
}

int percentileThresholdBin(const std::vector<double>& hist, double percentile) {
  double total = 0;
  for (double v : hist) total += v;
  if (total <= 0) return static_cast<int>(hist.size());
  const double target = total * percentile / 100.0;
  double cum = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    cum += hist[i];
    if (cum >= target) return static_cast<int>(i) + 1;
  }
  return static_cast<int>(hist.size());
}

// ---------------------------------------------------------------- data

namespace {

std::string fileNameFor(const std::string& input) {
  std::string s = input;
  for (char& c : s)
    if (c == '/' || c == '\\' || c == ':') c = '_';
  return s + ".npy";
}

[[noreturn]] void calibError(const std::string& msg) { throw BuildError(ErrorCode::kCalibration, "calibration: " + msg); }

}  // namespace

std::vector<std::map<std::string, std::string>> listCalibrationBatches(const Graph& g, const std::string& dataDir) {
  std::error_code ec;
  if (dataDir.empty()) calibError("no calibration data folder given");
  if (!fs::is_directory(dataDir, ec)) calibError("data folder '" + dataDir + "' does not exist or is not a folder");
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(dataDir, ec))
    if (e.is_directory()) dirs.push_back(e.path());
  if (ec) calibError("cannot list '" + dataDir + "': " + ec.message());
  std::sort(dirs.begin(), dirs.end());
  if (dirs.empty()) dirs.push_back(fs::path(dataDir));
  std::vector<std::map<std::string, std::string>> batches;
  for (const auto& d : dirs) {
    std::map<std::string, std::string> files;
    for (const auto& input : g.inputs) {
      fs::path f = d / fileNameFor(input);
      if (!fs::is_regular_file(f, ec))
        calibError("batch '" + d.string() + "' has no " + fileNameFor(input) + " for input '" + input +
                   "' (layout: DIR/<input>.npy, or DIR/<batch>/<input>.npy per batch)");
      files[input] = f.string();
    }
    batches.push_back(std::move(files));
  }
  return batches;
}

namespace {

void checkBatchInput(const Graph& g, const std::string& name, const Tensor& t, const std::string& file) {
  const ValueType* vt = g.typeOf(name);
  if (!vt || !vt->known()) return;
  if (vt->dtype != t.dtype)
    calibError(file + ": input '" + name + "' must be " + dataTypeName(vt->dtype) + ", the file holds " + dataTypeName(t.dtype));
  if (!vt->hasShape) return;
  bool ok = vt->dims.size() == t.shape.size();
  for (size_t i = 0; ok && i < t.shape.size(); ++i) ok = vt->dims[i] < 0 || vt->dims[i] == t.shape[i];
  if (!ok) calibError(file + ": input '" + name + "' must be " + vt->toString() + ", the file holds shape " + shapeToString(t.shape));
}

// Runs the graph like runGraph, but only the nodes the watched values depend on, and hands each
// watched value (graph input or node output) to visit() as soon as it exists.
// TODO(core): an observer hook in executor.h (RunOptions::onValue) would replace this traversal.
void observeGraph(const Graph& g, const std::map<std::string, Tensor>& inputs, const std::set<std::string>& watch,
                  const PassContext& ctx, const std::function<void(const std::string&, const Tensor&)>& visit) {
  std::vector<bool> needed(g.nodes.size(), false);
  std::set<std::string> want(watch.begin(), watch.end());
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    bool any = false;
    for (const auto& o : n.outputs) any = any || (!o.empty() && want.count(o));
    if (!any) continue;
    needed[i] = true;
    for (const auto& in : n.inputs)
      if (!in.empty()) want.insert(in);
  }
  std::map<std::string, int> remaining;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (needed[i])
      for (const auto& in : g.nodes[i].inputs)
        if (!in.empty()) ++remaining[in];
  std::map<std::string, const Tensor*> values;
  std::map<std::string, Tensor> owned;
  for (const auto& kv : g.initializers) values[kv.first] = &kv.second;
  for (const auto& kv : inputs) {
    values[kv.first] = &kv.second;
    if (watch.count(kv.first)) visit(kv.first, kv.second);
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!needed[i]) continue;
    ctx.checkCancelled();
    const Node& node = g.nodes[i];
    std::vector<const Tensor*> ins;
    for (const auto& in : node.inputs) {
      if (in.empty()) { ins.push_back(nullptr); continue; }
      auto it = values.find(in);
      if (it == values.end()) throw BuildError(ErrorCode::kInternal, "calibration: node '" + node.name + "' input '" + in + "' missing");
      ins.push_back(it->second);
    }
    std::vector<Tensor> outs = runNode(g, node, ins);
    for (size_t k = 0; k < node.outputs.size() && k < outs.size(); ++k) {
      const std::string& name = node.outputs[k];
      if (name.empty()) continue;
      if (watch.count(name)) visit(name, outs[k]);
      if (remaining.count(name)) {
        owned[name] = std::move(outs[k]);
        values[name] = &owned[name];
      }
    }
    for (const auto& in : node.inputs) {
      auto r = remaining.find(in);
      if (!in.empty() && r != remaining.end() && --r->second <= 0 && owned.count(in)) {
        values.erase(in);
        owned.erase(in);
      }
    }
  }
}

// Max |x| over the finite values of a float tensor.
double absMax(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = std::abs(t.getDouble(i));
    if (std::isfinite(v) && v > m) m = v;
  }
  return m;
}

void addToHistogram(const Tensor& t, double amax, std::vector<double>& hist) {
  if (amax <= 0) return;
  const double scale = kCalibrationBins / amax;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = std::abs(t.getDouble(i));
    if (!std::isfinite(v)) continue;
    const int b = std::min(static_cast<int>(v * scale), kCalibrationBins - 1);
    hist[static_cast<size_t>(b)] += 1;
  }
}

}  // namespace

CalibrationTable calibrate(const Graph& g, const CalibrationConfig& config, const std::set<std::string>& tensors,
                           const PassContext& ctx, int* batchesUsed) {
  if (config.method != "entropy" && config.method != "minmax" && config.method != "percentile")
    calibError("unknown method '" + config.method + "' (expected entropy, minmax or percentile)");
  if (config.method == "percentile" && !(config.percentile > 50 && config.percentile <= 100))
    calibError("percentile must be in (50, 100], got " + std::to_string(config.percentile));
  for (const auto& t : tensors) {
    const ValueType* vt = g.typeOf(t);
    if (vt && vt->known() && vt->dtype != DataType::kFloat && vt->dtype != DataType::kFloat16)
      calibError("tensor '" + t + "' is " + dataTypeName(vt->dtype) + ", only float tensors are calibrated");
  }
  const auto batches = listCalibrationBatches(g, config.dataDir);
  if (batchesUsed) *batchesUsed = static_cast<int>(batches.size());
  auto load = [&](const std::map<std::string, std::string>& files) {
    std::map<std::string, Tensor> in;
    for (const auto& kv : files) {
      Tensor t;
      try {
        t = readNpy(kv.second);
      } catch (const BuildError& e) {
        calibError(std::string(e.what()));
      }
      checkBatchInput(g, kv.first, t, kv.second);
      in[kv.first] = std::move(t);
    }
    return in;
  };
  auto run = [&](const std::map<std::string, std::string>& files, const std::function<void(const std::string&, const Tensor&)>& visit) {
    std::map<std::string, Tensor> in = load(files);
    try {
      observeGraph(g, in, tensors, ctx, visit);
    } catch (const BuildError& e) {
      if (e.code() == ErrorCode::kCancelled) throw;
      calibError("running batch " + files.begin()->second + ": " + e.what());
    }
  };

  // Pass 1: the range of every tensor.
  std::map<std::string, double> amax;
  std::set<std::string> seen;
  for (const auto& b : batches)
    run(b, [&](const std::string& name, const Tensor& t) {
      amax[name] = std::max(amax[name], absMax(t));
      seen.insert(name);
    });
  for (const auto& t : tensors)
    if (!seen.count(t)) calibError("tensor '" + t + "' was never computed from the calibration inputs");

  CalibrationTable table;
  table.method = config.method;
  if (config.method != "minmax") {
    // Pass 2: |x| histograms over [0, amax].
    std::map<std::string, std::vector<double>> hist;
    for (const auto& t : tensors) hist[t].assign(kCalibrationBins, 0.0);
    for (const auto& b : batches)
      run(b, [&](const std::string& name, const Tensor& t) { addToHistogram(t, amax[name], hist[name]); });
    for (const auto& t : tensors) {
      ctx.checkCancelled();
      const int bin = config.method == "entropy" ? entropyThresholdBin(hist[t]) : percentileThresholdBin(hist[t], config.percentile);
      amax[t] = amax[t] * bin / kCalibrationBins;
    }
  }
  for (const auto& t : tensors) table.amax[t] = static_cast<float>(amax[t]);
  return table;
}

// ---------------------------------------------------------------- cache

std::string calibrationCacheJson(const CalibrationTable& table, const CalibrationConfig& config, int batches) {
  JsonWriter w;
  w.beginObject();
  w.field("format", "planforge-calibration");
  w.field("version", 1);
  w.field("method", table.method);
  if (table.method == "percentile") w.field("percentile", config.percentile);
  w.field("batches", batches);
  w.key("tensors").beginObject();
  for (const auto& kv : table.amax) {
    w.key(kv.first).beginObject();
    w.field("amax", static_cast<double>(kv.second));
    w.field("scale", static_cast<double>(kv.second) / 127.0);
    w.endObject();
  }
  w.endObject();
  w.endObject();
  return w.str() + "\n";
}

void writeCalibrationCache(const std::string& path, const CalibrationTable& table, const CalibrationConfig& config, int batches) {
  const std::string text = calibrationCacheJson(table, config, batches);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw BuildError(ErrorCode::kIo, "cannot write calibration cache '" + path + "'");
    f << text;
    if (!f.good()) throw BuildError(ErrorCode::kIo, "cannot write calibration cache '" + path + "'");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw BuildError(ErrorCode::kIo, "cannot write calibration cache '" + path + "': " + ec.message());
}

namespace {

// A minimal JSON reader for the cache: objects, arrays, strings, numbers, true/false/null.
struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  double number = 0;
  std::string str;
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;
  const JsonValue* get(const std::string& k) const {
    for (const auto& m : members)
      if (m.first == k) return &m.second;
    return nullptr;
  }
};

class JsonReader {
 public:
  JsonReader(const std::string& s, const std::string& source) : s_(s), source_(source) {}
  JsonValue parseDocument() {
    JsonValue v = parseValue(0);
    ws();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw BuildError(ErrorCode::kCalibration, "calibration cache " + source_ + " is not valid JSON (" + what + " at offset " + std::to_string(i_) + ")");
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) { ++i_; return true; }
    return false;
  }
  std::string parseString() {
    if (!eat('"')) fail("expected a string");
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) fail("bad escape");
      char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) fail("bad \\u escape");
          const unsigned cp = static_cast<unsigned>(std::strtoul(s_.substr(i_, 4).c_str(), nullptr, 16));
          i_ += 4;
          if (cp < 0x80) out += static_cast<char>(cp);
          else if (cp < 0x800) { out += static_cast<char>(0xc0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
          else { out += static_cast<char>(0xe0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
          break;
        }
        default: fail("bad escape");
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  JsonValue parseValue(int depth) {
    if (depth > 32) fail("nesting too deep");
    ws();
    if (i_ >= s_.size()) fail("unexpected end");
    JsonValue v;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = JsonValue::Kind::kObject;
      if (eat('}')) return v;
      do {
        std::string k = parseString();
        if (!eat(':')) fail("expected ':'");
        v.members.emplace_back(std::move(k), parseValue(depth + 1));
      } while (eat(','));
      if (!eat('}')) fail("expected '}'");
    } else if (c == '[') {
      ++i_;
      v.kind = JsonValue::Kind::kArray;
      if (eat(']')) return v;
      do v.items.push_back(parseValue(depth + 1));
      while (eat(','));
      if (!eat(']')) fail("expected ']'");
    } else if (c == '"') {
      v.kind = JsonValue::Kind::kString;
      v.str = parseString();
    } else if (s_.compare(i_, 4, "true") == 0 || s_.compare(i_, 5, "false") == 0) {
      v.kind = JsonValue::Kind::kBool;
      i_ += s_[i_] == 't' ? 4 : 5;
    } else if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
    } else {
      const char* start = s_.c_str() + i_;
      char* end = nullptr;
      v.number = std::strtod(start, &end);
      if (end == start) fail("unexpected character");
      v.kind = JsonValue::Kind::kNumber;
      i_ += static_cast<size_t>(end - start);
    }
    return v;
  }
  const std::string& s_;
  std::string source_;
  size_t i_ = 0;
};

}  // namespace

CalibrationTable parseCalibrationCache(const std::string& json, const std::string& source) {
  JsonValue doc = JsonReader(json, source).parseDocument();
  auto bad = [&](const std::string& what) -> BuildError {
    return BuildError(ErrorCode::kCalibration, "calibration cache " + source + ": " + what);
  };
  if (doc.kind != JsonValue::Kind::kObject) throw bad("expected a JSON object");
  const JsonValue* format = doc.get("format");
  if (!format || format->kind != JsonValue::Kind::kString || format->str != "planforge-calibration")
    throw bad("\"format\" must be \"planforge-calibration\"");
  const JsonValue* version = doc.get("version");
  if (!version || version->kind != JsonValue::Kind::kNumber || version->number != 1) throw bad("unsupported \"version\" (expected 1)");
  CalibrationTable table;
  const JsonValue* method = doc.get("method");
  if (!method || method->kind != JsonValue::Kind::kString || method->str.empty()) throw bad("\"method\" must be a non-empty string");
  table.method = method->str;
  const JsonValue* tensors = doc.get("tensors");
  if (!tensors || tensors->kind != JsonValue::Kind::kObject) throw bad("\"tensors\" must be an object");
  for (const auto& m : tensors->members) {
    const JsonValue* a = m.second.kind == JsonValue::Kind::kObject ? m.second.get("amax") : nullptr;
    if (!a || a->kind != JsonValue::Kind::kNumber || !std::isfinite(a->number) || a->number < 0)
      throw bad("tensor '" + m.first + "' needs a finite, non-negative \"amax\"");
    table.amax[m.first] = static_cast<float>(a->number);
  }
  return table;
}

CalibrationTable readCalibrationCache(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw BuildError(ErrorCode::kIo, "cannot read calibration cache '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return parseCalibrationCache(ss.str(), "'" + path + "'");
}

}  // namespace planforge
