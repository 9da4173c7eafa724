// FP16 / INT8 lowering and calibration on tiny graphs: what the rewrite puts in the graph
// (float16 / int8 weights, RoundToFp16, Q/DQ), that the reference executor then reflects the
// reduced precision, the calibration methods, the data layout and the JSON cache.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/half.h"
#include "core/npy.h"
#include "core/precision/calibrator.h"
#include "core/precision/int8.h"
#include "core/precision/precision.h"
#include "fusion_test_util.h"

using namespace planforge;
using namespace pftest;
namespace fs = std::filesystem;

namespace {

// x[N,3,8,8] -> Conv(3->6, 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(6->4) -> y
Graph smallNet() {
  Graph g;
  g.opset = 13;
  addInput(g, "x", {-1, 3, 8, 8});
  addConst(g, "w1", seeded({6, 3, 3, 3}, 11, 0.4f));
  addConst(g, "b1", seeded({6}, 12, 0.1f));
  addConst(g, "w2", seeded({4, 6}, 13, 0.8f));
  addConst(g, "b2", seeded({4}, 14, 0.1f));
  Node conv = node("Conv", "conv", {"x", "w1", "b1"}, {"c"});
  conv.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  g.nodes.push_back(conv);
  g.nodes.push_back(node("Relu", "relu", {"c"}, {"r"}));
  g.nodes.push_back(node("GlobalAveragePool", "gap", {"r"}, {"p"}));
  g.nodes.push_back(node("Flatten", "flat", {"p"}, {"f"}));
  Node fc = node("Gemm", "fc", {"f", "w2", "b2"}, {"y"});
  fc.attrs.values["transB"] = intAttr(1);
  g.nodes.push_back(fc);
  g.outputs = {"y"};
  inferShapes(g);
  return g;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("planforge_precision_test_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// `batches` sub-folders of x.npy with [2,3,8,8] inputs.
void writeCalibrationData(const fs::path& dir, int batches) {
  for (int b = 0; b < batches; ++b) {
    fs::create_directories(dir / ("batch" + std::to_string(b)));
    writeNpy((dir / ("batch" + std::to_string(b)) / "x.npy").string(), seeded({2, 3, 8, 8}, 100 + b));
  }
}

Tensor runY(const Graph& g, uint32_t seed) {
  std::map<std::string, Tensor> in{{"x", seeded({2, 3, 8, 8}, seed)}};
  return runGraph(g, in).at("y");
}

int countOp(const Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& x : g.nodes) n += x.opType == op;
  return n;
}

PrecisionConfig int8Config(const fs::path& data, const std::string& method) {
  PrecisionConfig pc;
  pc.precision = "int8";
  pc.calibration.enabled = true;
  pc.calibration.dataDir = data.string();
  pc.calibration.method = method;
  return pc;
}

}  // namespace

TEST(entropy_threshold_clips_a_long_sparse_tail) {
  std::vector<double> hist(kCalibrationBins, 0.0);
  for (int i = 0; i < 300; ++i) hist[static_cast<size_t>(i)] = 1000.0 * std::exp(-i / 60.0);  // bulk near zero
  for (int i = 300; i < kCalibrationBins; i += 97) hist[static_cast<size_t>(i)] = 1;           // rare outliers
  const int t = entropyThresholdBin(hist);
  CHECK(t >= kInt8QuantizedBins);
  CHECK(t < 1000);
  // A uniform distribution keeps (almost) its whole range.
  std::vector<double> uniform(kCalibrationBins, 10.0);
  CHECK(entropyThresholdBin(uniform) > 1900);
  CHECK_EQ(entropyThresholdBin(std::vector<double>(kCalibrationBins, 0.0)), kCalibrationBins);
}

TEST(percentile_threshold) {
  std::vector<double> uniform(kCalibrationBins, 1.0);
  CHECK_EQ(percentileThresholdBin(uniform, 50.0), 1024);
  CHECK_EQ(percentileThresholdBin(uniform, 100.0), kCalibrationBins);
  std::vector<double> h(kCalibrationBins, 0.0);
  h[10] = 9999;
  h[2000] = 1;
  CHECK_EQ(percentileThresholdBin(h, 99.99), 11);
  CHECK_EQ(percentileThresholdBin(h, 100.0), 2001);
}

TEST(fp16_stores_half_weights_and_rounds_layer_outputs) {
  Graph ref = smallNet();
  Graph g = smallNet();
  PrecisionConfig pc;
  pc.precision = "fp16";
  PassContext ctx;
  CalibrationTable table;
  std::vector<std::string> changes;
  applyPrecision(g, pc, ctx, table, changes);
  CHECK(table.method.empty());
  // Conv and Gemm read their float16 weights directly; no float32 weight is left.
  int halfWeights = 0;
  for (const auto& kv : g.initializers) {
    CHECK(kv.second.dtype != DataType::kFloat);
    halfWeights += kv.second.dtype == DataType::kFloat16;
  }
  CHECK_EQ(halfWeights, 4);
  CHECK(countOp(g, "RoundToFp16") >= 3);  // the input, the Conv, the pool, the Gemm
  for (const auto& n : g.nodes) CHECK_EQ(n.precision, std::string("fp16"));
  const Tensor y32 = runY(ref, 5), y16 = runY(g, 5);
  const double diff = maxAbsDiff(y32, y16);
  CHECK(diff > 0);       // the simulation is not a no-op
  CHECK(diff < 5e-3);    // but close to FP32
  for (int64_t i = 0; i < y16.numel(); ++i) {  // outputs are FP16 values
    const float v = y16.data<float>()[i];
    CHECK_EQ(halfToFloat(floatToHalf(v)), v);
  }
  CHECK(changes.back().find("fp16: 4 weights") != std::string::npos);
}

TEST(fp16_layer_override_keeps_fp32_weights) {
  Graph g = smallNet();
  PrecisionConfig pc;
  pc.precision = "fp16";
  pc.layerPrecisions["fc"] = "fp32";
  PassContext ctx;
  CalibrationTable table;
  std::vector<std::string> changes;
  applyPrecision(g, pc, ctx, table, changes);
  const Node* fc = nullptr;
  for (const auto& n : g.nodes)
    if (n.name == "fc") fc = &n;
  CHECK(fc != nullptr);
  CHECK_EQ(fc->precision, std::string("fp32"));
  CHECK(g.initializers.at(fc->inputs[1]).dtype == DataType::kFloat);
  CHECK(maxAbsDiff(runY(smallNet(), 3), runY(g, 3)) < 5e-3);
}

TEST(int8_minmax_inserts_qdq_and_int8_weights) {
  TempDir tmp("minmax");
  writeCalibrationData(tmp.path, 3);
  Graph g = smallNet();
  PassContext ctx;
  CalibrationTable table;
  std::vector<std::string> changes;
  applyPrecision(g, int8Config(tmp.path, "minmax"), ctx, table, changes);
  CHECK_EQ(table.method, std::string("minmax"));
  CHECK_EQ(table.amax.size(), 2u);  // the Conv input and the Gemm input
  // minmax: amax of x is the max |x| over all batches.
  double maxX = 0;
  for (int b = 0; b < 3; ++b) {
    Tensor t = seeded({2, 3, 8, 8}, 100 + b);
    for (int64_t i = 0; i < t.numel(); ++i) maxX = std::max(maxX, std::abs(static_cast<double>(t.data<float>()[i])));
  }
  CHECK_NEAR(table.amax.at("x"), maxX, 1e-6);
  CHECK_EQ(countOp(g, "QuantizeLinear"), 2);
  CHECK_EQ(countOp(g, "DequantizeLinear"), 4);  // 2 activations + 2 weights
  int int8Weights = 0;
  for (const auto& kv : g.initializers)
    if (kv.second.dtype == DataType::kInt8 && kv.second.numel() > 6) ++int8Weights;
  CHECK_EQ(int8Weights, 2);
  for (const auto& n : g.nodes)
    if (n.name == "relu" || n.name == "gap" || n.name == "flat") CHECK_EQ(n.precision, std::string("fp32"));  // no INT8 kernel
  // The reference run reflects INT8 rounding: close to FP32, not equal.
  const Tensor y32 = runY(smallNet(), 100), y8 = runY(g, 100);
  const double diff = maxAbsDiff(y32, y8);
  double scale = 0;
  for (int64_t i = 0; i < y32.numel(); ++i) scale = std::max(scale, std::abs(y32.getDouble(i)));
  CHECK(diff > 0);
  if (!(diff < 0.05 * scale + 1e-3)) PF_FAIL("int8 error " << diff << " vs output scale " << scale);
}

TEST(int8_entropy_and_percentile_clip_no_more_than_minmax) {
  TempDir tmp("methods");
  writeCalibrationData(tmp.path, 2);
  std::map<std::string, CalibrationTable> tables;
  for (const char* m : {"minmax", "entropy", "percentile"}) {
    Graph g = smallNet();
    PassContext ctx;
    std::vector<std::string> changes;
    PrecisionConfig pc = int8Config(tmp.path, m);
    pc.calibration.percentile = 99.0;
    applyPrecision(g, pc, ctx, tables[m], changes);
    CHECK_EQ(tables[m].method, std::string(m));
    CHECK(maxAbsDiff(runY(smallNet(), 101), runY(g, 101)) < 0.1);
  }
  for (const auto& kv : tables["minmax"].amax) {
    CHECK(tables["entropy"].amax.at(kv.first) <= kv.second * 1.0001f);
    CHECK(tables["percentile"].amax.at(kv.first) <= kv.second);
    CHECK(tables["entropy"].amax.at(kv.first) > 0);
  }
  // x has 768 values: its 99th percentile is clearly below its max (f has 24: the max itself).
  CHECK(tables["percentile"].amax.at("x") < 0.999f * tables["minmax"].amax.at("x"));
}

TEST(int8_calibration_cache_round_trip_skips_calibration) {
  TempDir tmp("cache");
  writeCalibrationData(tmp.path / "data", 2);
  const std::string cache = (tmp.path / "calib.json").string();
  Graph a = smallNet();
  PrecisionConfig pc = int8Config(tmp.path / "data", "entropy");
  pc.calibration.cacheFile = cache;
  PassContext ctx;
  CalibrationTable ta, tb;
  std::vector<std::string> changes;
  applyPrecision(a, pc, ctx, ta, changes);
  CHECK(fs::exists(cache));
  // Second build: no data at all, only the cache.
  PrecisionConfig fromCache;
  fromCache.precision = "int8";
  fromCache.calibration.cacheFile = cache;
  Graph b = smallNet();
  std::vector<std::string> changes2;
  applyPrecision(b, fromCache, ctx, tb, changes2);
  CHECK_EQ(tb.method, std::string("entropy"));
  CHECK_EQ(ta.amax.size(), tb.amax.size());
  for (const auto& kv : ta.amax) CHECK_NEAR(tb.amax.at(kv.first), kv.second, 1e-6 * kv.second);
  CHECK(changes2[0].find("read from cache") != std::string::npos);
  CHECK_EQ(maxAbsDiff(runY(a, 7), runY(b, 7)), 0.0);
  // The JSON carries method and per-tensor amax / scale.
  std::ifstream f(cache);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(text.find("\"method\":\"entropy\"") != std::string::npos);
  CHECK(text.find("\"scale\"") != std::string::npos);
  // A cache for another model lacks this model's tensors.
  std::ofstream(cache) << R"({"format":"planforge-calibration","version":1,"method":"minmax","tensors":{"other":{"amax":1}}})";
  Graph c = smallNet();
  CHECK_THROWS_CODE(applyPrecision(c, fromCache, ctx, tb, changes2), ErrorCode::kCalibration, "no range for tensor");
  std::ofstream(cache) << "{\"format\":\"planforge-calibration\",";
  Graph d = smallNet();
  CHECK_THROWS_CODE(applyPrecision(d, fromCache, ctx, tb, changes2), ErrorCode::kCalibration, "not valid JSON");
}

TEST(int8_errors_without_data_or_with_bad_data) {
  PassContext ctx;
  CalibrationTable t;
  std::vector<std::string> changes;
  Graph g = smallNet();
  PrecisionConfig pc;
  pc.precision = "int8";
  CHECK_THROWS_CODE(applyPrecision(g, pc, ctx, t, changes), ErrorCode::kCalibration, "calibration data");
  TempDir tmp("bad");
  Graph g2 = smallNet();
  CHECK_THROWS_CODE(applyPrecision(g2, int8Config(tmp.path, "entropy"), ctx, t, changes), ErrorCode::kCalibration, "x.npy");
  writeNpy((tmp.path / "x.npy").string(), seeded({2, 5, 8, 8}, 1));  // wrong channel count
  Graph g3 = smallNet();
  CHECK_THROWS_CODE(applyPrecision(g3, int8Config(tmp.path, "entropy"), ctx, t, changes), ErrorCode::kCalibration, "shape");
  writeNpy((tmp.path / "x.npy").string(), seeded({1, 3, 8, 8}, 1));  // one flat batch is fine
  Graph g4 = smallNet();
  applyPrecision(g4, int8Config(tmp.path, "minmax"), ctx, t, changes);
  CHECK_EQ(t.amax.size(), 2u);
  Graph g5 = smallNet();
  CHECK_THROWS_CODE(applyPrecision(g5, int8Config(tmp.path, "kl"), ctx, t, changes), ErrorCode::kCalibration, "unknown method");
}

TEST(int8_keeps_existing_qdq_scales) {
  // x -> Q -> DQ -> Conv: the Conv input already carries the model's scale.
  Graph g = smallNet();
  addConst(g, "xs", scalar(0.05f));
  Tensor zp(DataType::kInt8, {});
  addConst(g, "xz", zp);
  Node q = node("QuantizeLinear", "q", {"x", "xs", "xz"}, {"xq"});
  Node dq = node("DequantizeLinear", "dq", {"xq", "xs", "xz"}, {"xd"});
  g.nodes.insert(g.nodes.begin(), {q, dq});
  g.nodes[2].inputs[0] = "xd";
  inferShapes(g);
  std::set<std::string> needed = int8ActivationTensors([&] {
    Graph l = g;
    for (auto& n : l.nodes) n.precision = "int8";
    return l;
  }());
  CHECK_EQ(needed.size(), 1u);  // only the Gemm input
  CHECK(needed.count("f") == 1);
  TempDir tmp("qdq");
  writeCalibrationData(tmp.path, 1);
  PassContext ctx;
  CalibrationTable t;
  std::vector<std::string> changes;
  applyPrecision(g, int8Config(tmp.path, "minmax"), ctx, t, changes);
  CHECK(!t.amax.count("xd") && !t.amax.count("x"));
  CHECK_EQ(countOp(g, "QuantizeLinear"), 2);  // the model's own + the Gemm input's
  bool mentioned = false;
  for (const auto& c : changes) mentioned = mentioned || c.find("keep the model's own Q/DQ") != std::string::npos;
  CHECK(mentioned);
}

TEST(int8_fused_layers_and_fp16_override_mix) {
  // Fused graph (FusedConv with SiLU) in int8, with the classifier overridden to fp16.
  Graph g = smallNet();
  g.nodes[0].opType = "FusedConv";
  g.nodes[0].domain = "planforge";
  g.nodes[0].attrs.values["activation"] = stringAttr("SiLU");
  g.nodes[0].originalNames = {"conv", "sig", "mul"};
  Graph ref = g;
  TempDir tmp("mix");
  writeCalibrationData(tmp.path, 2);
  PrecisionConfig pc = int8Config(tmp.path, "percentile");
  pc.layerPrecisions["fc"] = "fp16";
  PassContext ctx;
  CalibrationTable t;
  std::vector<std::string> changes;
  applyPrecision(g, pc, ctx, t, changes);
  CHECK_EQ(t.amax.size(), 1u);  // only the FusedConv input: the Gemm runs in fp16
  CHECK_EQ(countOp(g, "QuantizeLinear"), 1);
  CHECK(countOp(g, "RoundToFp16") >= 2);
  CHECK(maxAbsDiff(runY(ref, 9), runY(g, 9)) < 0.05);
}

TEST(fp16_and_int8_on_fused_gemm_layers_and_activation_matmul) {
  // x[2,5,8] -> FusedMatMul(w, b, Gelu) -> MatMul(h, h^T-like activation) -> y: the second MatMul
  // has no constant weight, so INT8 quantizes both of its inputs per tensor.
  Graph g;
  g.opset = 17;
  addInput(g, "x", {2, 5, 8});
  addConst(g, "w", seeded({8, 8}, 21, 0.5f));
  addConst(g, "b", seeded({8}, 22, 0.1f));
  Node fm = node("FusedMatMul", "fc", {"x", "w", "b"}, {"h"});
  fm.domain = "planforge";
  fm.attrs.values["activation"] = stringAttr("Gelu");
  g.nodes.push_back(fm);
  Node tr = node("Transpose", "tr", {"h"}, {"ht"});
  tr.attrs.values["perm"] = intsAttr({0, 2, 1});
  g.nodes.push_back(tr);
  g.nodes.push_back(node("MatMul", "scores", {"h", "ht"}, {"y"}));
  g.outputs = {"y"};
  inferShapes(g);
  std::map<std::string, Tensor> in{{"x", seeded({2, 5, 8}, 23)}};
  const Tensor ref = runGraph(g, in).at("y");

  Graph h16 = g;
  PrecisionConfig pc;
  pc.precision = "fp16";
  PassContext ctx;
  CalibrationTable t;
  std::vector<std::string> changes;
  applyPrecision(h16, pc, ctx, t, changes);
  CHECK(h16.initializers.at(h16.nodes[1].inputs[1]).dtype == DataType::kFloat16);  // after the input reformat
  const double d16 = maxAbsDiff(ref, runGraph(h16, in).at("y"));
  CHECK(d16 > 0 && d16 < 1e-2);

  TempDir tmp("fusedmm");
  writeNpy((tmp.path / "x.npy").string(), in.at("x"));
  Graph h8 = g;
  applyPrecision(h8, int8Config(tmp.path, "minmax"), ctx, t, changes);
  CHECK_EQ(t.amax.size(), 3u);  // x, h, ht
  CHECK_EQ(countOp(h8, "QuantizeLinear"), 3);
  const double d8 = maxAbsDiff(ref, runGraph(h8, in).at("y"));
  double scale = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) scale = std::max(scale, std::abs(ref.getDouble(i)));
  CHECK(d8 > 0);
  if (!(d8 < 0.03 * scale)) PF_FAIL("int8 error " << d8 << " vs scale " << scale);
}

TEST(calibration_bad_files_and_cancellation) {
  TempDir tmp("corrupt");
  std::ofstream(tmp.path / "x.npy") << "not a numpy file";
  PassContext ctx;
  CalibrationTable t;
  std::vector<std::string> changes;
  Graph g = smallNet();
  CHECK_THROWS_CODE(applyPrecision(g, int8Config(tmp.path, "entropy"), ctx, t, changes), ErrorCode::kCalibration, "x.npy");
  writeNpy((tmp.path / "x.npy").string(), int64s({2}, {1, 2}));
  Graph g2 = smallNet();
  CHECK_THROWS_CODE(applyPrecision(g2, int8Config(tmp.path, "entropy"), ctx, t, changes), ErrorCode::kCalibration, "float32");
  PrecisionConfig pc = int8Config(tmp.path, "percentile");
  pc.calibration.percentile = 20;
  writeNpy((tmp.path / "x.npy").string(), seeded({1, 3, 8, 8}, 1));
  Graph g3 = smallNet();
  CHECK_THROWS_CODE(applyPrecision(g3, pc, ctx, t, changes), ErrorCode::kCalibration, "percentile");
  std::atomic<bool> cancel{true};
  PassContext cancelled;
  cancelled.cancel = &cancel;
  Graph g4 = smallNet();
  CHECK_THROWS_CODE(applyPrecision(g4, int8Config(tmp.path, "entropy"), cancelled, t, changes), ErrorCode::kCancelled, "cancel");
}
