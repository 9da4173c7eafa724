// Autotuning results that outlive one build: the fastest tactic per (optimizer version, SM,
// layer signature). A signature is what determines a kernel's speed: op type, domain, precision,
// input dtypes/shapes and attributes — never node or tensor names — so two models sharing a
// layer shape share the measurement. Text file, one entry per line, sorted (deterministic).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "../graph.h"

namespace planforge {
namespace gpu {

struct TimingKey {
  std::string optimizerVersion;
  int sm = 0;
  std::string signature;
  bool operator<(const TimingKey& o) const {
    return std::tie(optimizerVersion, sm, signature) < std::tie(o.optimizerVersion, o.sm, o.signature);
  }
};

struct TimingEntry {
  int64_t tactic = 0;
  double ms = 0;  // best measured time of that tactic
};

class TimingCache {
 public:
  // "Conv|planforge|fp16|float32[1,64,56,56];float32[64,64,3,3]|group=1;pads=1,1,1,1;..."
  static std::string layerSignature(const Node& n, const std::vector<std::pair<DataType, Shape>>& inputs);

  const TimingEntry* find(const TimingKey& key) const;  // exact version + SM + signature only
  // Records a measurement; an existing entry is replaced only by a faster one.
  void record(const TimingKey& key, const TimingEntry& e);
  // Merge rule: per key the faster entry wins (equal times: the lower tactic id), so merging is
  // commutative and idempotent; entries of other versions / SMs are kept but never matched.
  void merge(const TimingCache& other);
  // Drops entries of other optimizer versions (their kernels may differ).
  size_t pruneOtherVersions(const std::string& optimizerVersion);
  size_t size() const { return entries_.size(); }

  std::string serialize() const;
  // Throws BuildError(E_PARSE) naming the line on malformed input.
  static TimingCache parse(const std::string& text);
  static TimingCache load(const std::string& path);  // empty cache when the file does not exist
  void save(const std::string& path) const;          // atomic (temp + rename)

 private:
  std::map<TimingKey, TimingEntry> entries_;
};

}  // namespace gpu
}  // namespace planforge
