// Plan format: round trip, determinism, bounds-checked loading of damaged plans, SM checks.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "core/executor.h"
#include "core/plan/plan.h"
#include "core/sha256.h"
#include "test_framework.h"
#include "test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

Plan samplePlan() {
  ensureTestOps();
  Plan p;
  p.header.optimizerVersion = "0.1.0";
  p.header.targetSm = 86;
  p.header.precision = "fp16";
  p.header.modelSha256 = std::string(64, 'a');
  p.header.specHash = "spec-1";
  p.header.nodesBefore = 3;
  p.header.nodesAfter = 2;
  Graph& g = p.graph;
  g.irVersion = 8;
  g.opset = 13;
  g.opsetImports[""] = 13;
  g.name = "sample";
  addInput(g, "x", {-1, 3});
  g.outputs = {"y"};
  g.initializers["w"] = floats({3}, {1, 2, 3});
  g.initializers["big"] = floats({5}, {1, 2, 3, 4, 5});
  Node add = node("Add", "add", {"x", "w"}, {"t"});
  add.originalNames = {"add", "identity_0"};
  add.precision = "fp16";
  add.attrs.values["axes"] = intsAttr({0, 1});
  Attribute ta;
  ta.kind = Attribute::Kind::kTensor;
  ta.t = std::make_shared<Tensor>(int64s({2}, {4, 5}));
  add.attrs.values["t"] = ta;
  g.nodes.push_back(add);
  g.nodes.push_back(node("Relu", "relu", {"t"}, {"y"}));
  inferShapes(g);
  p.profiles.push_back(PlanProfile{"x", {1, 3}, {4, 3}, {8, 3}});
  p.passes.push_back(PassStats{"eliminate_identity", 3, 2, {"removed Identity 'identity_0'"}});
  p.calibration.method = "minmax";
  p.calibration.amax["x"] = 2.5f;
  return p;
}

void fixChecksum(std::vector<uint8_t>& b) {
  auto d = [&] {
    Sha256 h;
    h.update(b.data(), b.size() - 32);
    return h.digest();
  }();
  std::memcpy(b.data() + b.size() - 32, d.data(), 32);
}

}  // namespace

TEST(plan_round_trip_preserves_everything) {
  Plan p = samplePlan();
  std::vector<uint8_t> bytes = serializePlan(p);
  CHECK_EQ(std::string(reinterpret_cast<char*>(bytes.data()), 6), std::string("PFPLAN"));
  Plan q = parsePlan(bytes.data(), bytes.size());
  CHECK_EQ(q.header.targetSm, 86);
  CHECK_EQ(q.header.precision, std::string("fp16"));
  CHECK_EQ(q.header.specHash, std::string("spec-1"));
  CHECK_EQ(q.graph.nodes.size(), 2u);
  CHECK(q.graph.nodes[0].originalNames == (std::vector<std::string>{"add", "identity_0"}));
  CHECK_EQ(q.graph.nodes[0].precision, std::string("fp16"));
  CHECK(q.graph.nodes[0].attrs.getInts("axes") == (std::vector<int64_t>{0, 1}));
  CHECK_EQ(q.graph.nodes[0].attrs.getTensor("t")->getInt64(1), 5);
  CHECK(q.graph.initializers.at("big").bytes == p.graph.initializers.at("big").bytes);
  CHECK_EQ(q.graph.typeOf("x")->dimParams[0], std::string("batch"));
  CHECK(q.profiles[0].max == (Shape{8, 3}));
  CHECK_EQ(q.passes[0].changes[0], std::string("removed Identity 'identity_0'"));
  CHECK_NEAR(q.calibration.amax.at("x"), 2.5, 0);
  // Re-serializing a parsed plan gives the same bytes: the format is canonical.
  CHECK(serializePlan(q) == bytes);
  auto out = runGraph(q.graph, {{"x", floats({1, 3}, {-5, 0, 1})}});
  CHECK_NEAR(out["y"].data<float>()[0], 0, 0);
  CHECK_NEAR(out["y"].data<float>()[2], 4, 0);
}

TEST(plan_weights_are_64_byte_aligned) {
  Plan p = samplePlan();
  std::vector<uint8_t> bytes = serializePlan(p);
  // Find the float payload of "big" (1,2,3,4,5) and check its file offset.
  const Tensor& big = p.graph.initializers.at("big");
  auto it = std::search(bytes.begin(), bytes.end(), big.bytes.begin(), big.bytes.end());
  CHECK(it != bytes.end());
  CHECK_EQ((it - bytes.begin()) % 64, 0);
}

TEST(plan_bytes_are_deterministic) {
  CHECK(serializePlan(samplePlan()) == serializePlan(samplePlan()));
}

TEST(plan_truncated_at_any_length_is_a_format_error) {
  std::vector<uint8_t> bytes = serializePlan(samplePlan());
  for (size_t n = 0; n < bytes.size(); n += (n < 128 ? 1 : 7))
    CHECK_THROWS_CODE(parsePlan(bytes.data(), n), ErrorCode::kPlanFormat, "plan");
}

TEST(plan_bit_flips_fail_the_checksum) {
  std::vector<uint8_t> bytes = serializePlan(samplePlan());
  for (size_t i = 16; i < bytes.size(); i += 13) {
    std::vector<uint8_t> b = bytes;
    b[i] ^= 0x40;
    CHECK_THROWS_CODE(parsePlan(b.data(), b.size()), ErrorCode::kPlanFormat, "");
  }
  std::vector<uint8_t> magic = bytes;
  magic[0] = 'X';
  CHECK_THROWS_CODE(parsePlan(magic.data(), magic.size()), ErrorCode::kPlanFormat, "not a planforge plan");
  std::vector<uint8_t> version = bytes;
  version[8] = 9;
  CHECK_THROWS_CODE(parsePlan(version.data(), version.size()), ErrorCode::kPlanFormat, "unsupported plan format version 9");
}

// Corruption with a valid checksum exercises every bounds check of the section decoders.
TEST(plan_corruption_with_valid_checksum_never_crashes) {
  std::vector<uint8_t> bytes = serializePlan(samplePlan());
  std::mt19937 rng(1234);
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = bytes;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      size_t i = 8 + rng() % (b.size() - 40);
      b[i] = static_cast<uint8_t>(rng() % 3 == 0 ? 0xff : rng());
    }
    fixChecksum(b);
    try {
      Plan q = parsePlan(b.data(), b.size());
    } catch (const BuildError& e) {
      if (e.code() != ErrorCode::kPlanFormat) PF_FAIL("unexpected code " << errorCodeName(e.code()) << ": " << e.what());
      ++rejected;
    }
  }
  CHECK(rejected > 1000);
}

TEST(plan_streamed_file_equals_in_memory_bytes) {
  Plan p = samplePlan();
  std::string memSha, fileSha;
  std::vector<uint8_t> bytes = serializePlan(p, &memSha);
  CHECK_EQ(memSha, sha256Hex(bytes.data(), bytes.size()));
  std::string path = "/tmp/planforge-unit-stream-" + std::to_string(::getpid()) + ".plan";
  uint64_t size = writePlanFile(path, p, &fileSha);
  CHECK_EQ(size, static_cast<uint64_t>(bytes.size()));
  CHECK_EQ(fileSha, memSha);
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> onDisk((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(onDisk == bytes);
  std::remove(path.c_str());
  CHECK_THROWS_CODE(writePlanFile("/nonexistent-dir/x.plan", p), ErrorCode::kIo, "cannot write plan");
}

TEST(plan_file_wrong_sm_and_atomic_write) {
  std::vector<uint8_t> bytes = serializePlan(samplePlan());
  std::string path = "/tmp/planforge-unit-" + std::to_string(::getpid()) + ".plan";
  writePlanFile(path, bytes);
  Plan ok = loadPlanFile(path);  // no SM check by default (CPU reference)
  CHECK_EQ(ok.header.targetSm, 86);
  PlanLoadOptions lo;
  lo.expectedSm = 86;
  loadPlanFile(path, lo);
  lo.expectedSm = 90;
  CHECK_THROWS_CODE(loadPlanFile(path, lo), ErrorCode::kWrongSm, "built for sm_86 but this device is sm_90");
  std::remove(path.c_str());
  CHECK_THROWS_CODE(loadPlanFile(path), ErrorCode::kIo, "cannot open plan");
}

TEST(plan_profiles_reject_out_of_range_inputs) {
  Plan p = samplePlan();
  checkInputsAgainstProfiles(p, {{"x", floats({8, 3}, std::vector<float>(24, 0))}});
  CHECK_THROWS_CODE(checkInputsAgainstProfiles(p, {{"x", floats({9, 3}, std::vector<float>(27, 0))}}), ErrorCode::kProfile,
                    "shape 9x3 is outside the plan's profile (min 1x3, max 8x3)");
}
