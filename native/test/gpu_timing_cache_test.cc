// Timing cache: signatures ignore names, merge rules (faster wins, commutative, idempotent),
// exact (version, SM, signature) matching, deterministic text round trip, malformed files.
#include <unistd.h>

#include "core/gpu/timing_cache.h"
#include "test_framework.h"
#include "test_util.h"

using namespace planforge;
using namespace pftest;
using planforge::gpu::TimingCache;
using planforge::gpu::TimingEntry;
using planforge::gpu::TimingKey;

namespace {
Node convNode(const std::string& name) {
  Node n = node("Conv", name, {"x_" + name, "w_" + name}, {"y_" + name});
  n.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  n.attrs.values["group"] = intAttr(1);
  n.precision = "fp16";
  return n;
}
const std::vector<std::pair<DataType, Shape>> kIns{{DataType::kFloat, {1, 64, 56, 56}}, {DataType::kFloat, {64, 64, 3, 3}}};
}  // namespace

TEST(gpu_timing_cache_signature_ignores_names_not_shapes) {
  const std::string a = TimingCache::layerSignature(convNode("a"), kIns), b = TimingCache::layerSignature(convNode("b"), kIns);
  CHECK_EQ(a, b);
  CHECK(a.find("group=1") != std::string::npos && a.find("float32[1x64x56x56]") != std::string::npos);
  auto other = kIns;
  other[0].second[0] = 8;
  CHECK(TimingCache::layerSignature(convNode("a"), other) != a);
  Node fp32 = convNode("a");
  fp32.precision = "fp32";
  CHECK(TimingCache::layerSignature(fp32, kIns) != a);
}

TEST(gpu_timing_cache_merge_keeps_the_faster_entry) {
  const std::string sig = TimingCache::layerSignature(convNode("a"), kIns);
  TimingCache x, y;
  x.record({"0.1.0", 90, sig}, {11, 0.50});
  y.record({"0.1.0", 90, sig}, {10, 0.40});
  y.record({"0.1.0", 80, sig}, {11, 0.90});
  TimingCache xy = x, yx = y;
  xy.merge(y);
  yx.merge(x);
  CHECK_EQ(xy.serialize(), yx.serialize());  // commutative
  CHECK_EQ(xy.find({"0.1.0", 90, sig})->tactic, int64_t(10));
  CHECK_EQ(xy.size(), size_t(2));
  TimingCache again = xy;
  again.merge(xy);
  CHECK_EQ(again.serialize(), xy.serialize());  // idempotent
  // A slower measurement never replaces a faster one; equal times keep the lower tactic id.
  xy.record({"0.1.0", 90, sig}, {11, 0.45});
  CHECK_EQ(xy.find({"0.1.0", 90, sig})->tactic, int64_t(10));
  xy.record({"0.1.0", 90, sig}, {3, 0.40});
  CHECK_EQ(xy.find({"0.1.0", 90, sig})->tactic, int64_t(3));
  // Exact matching: other SM / version are not used.
  CHECK(xy.find({"0.1.0", 86, sig}) == nullptr);
  CHECK(xy.find({"0.2.0", 90, sig}) == nullptr);
  xy.record({"0.0.9", 90, sig}, {10, 0.1});
  CHECK_EQ(xy.pruneOtherVersions("0.1.0"), size_t(1));
  CHECK(xy.find({"0.0.9", 90, sig}) == nullptr);
}

TEST(gpu_timing_cache_text_round_trip_and_errors) {
  TimingCache c;
  c.record({"0.1.0", 90, "b|sig"}, {21, 0.125});
  c.record({"0.1.0", 86, "a|sig"}, {20, 1.5});
  const std::string text = c.serialize();
  CHECK_EQ(TimingCache::parse(text).serialize(), text);
  char tmpl[] = "/tmp/pf-timing-XXXXXX";
  const int fd = mkstemp(tmpl);
  CHECK(fd >= 0);
  close(fd);
  c.save(tmpl);
  CHECK_EQ(TimingCache::load(tmpl).serialize(), text);
  unlink(tmpl);
  CHECK_EQ(TimingCache::load("/nonexistent/dir/cache.txt").size(), size_t(0));
  CHECK_THROWS_CODE(TimingCache::parse("not a cache\n"), ErrorCode::kParse, "line 1");
  CHECK_THROWS_CODE(TimingCache::parse("planforge-timing-cache 1\n0.1.0\t90\tsig\t20\n"), ErrorCode::kParse, "line 2");
  CHECK_THROWS_CODE(TimingCache::parse("planforge-timing-cache 1\n0.1.0\tx90\tsig\t20\t1.0\n"), ErrorCode::kParse, "bad");
  CHECK_THROWS_CODE(TimingCache::parse("planforge-timing-cache 1\n0.1.0\t90\tsig\t20\t-1\n"), ErrorCode::kParse, "bad time");
  CHECK_THROWS_CODE(TimingCache::parse(""), ErrorCode::kParse, "empty");
}
