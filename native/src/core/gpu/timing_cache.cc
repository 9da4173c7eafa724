#include "timing_cache.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "../tensor.h"

namespace planforge {
namespace gpu {

namespace {
constexpr const char* kHeader = "planforge-timing-cache 1";

std::string attrText(const Attribute& a) {
  std::ostringstream os;
  os.precision(9);
  switch (a.kind) {
    case Attribute::Kind::kFloat: os << a.f; break;
    case Attribute::Kind::kInt: os << a.i; break;
    case Attribute::Kind::kString: os << a.s; break;
    case Attribute::Kind::kFloats: for (size_t i = 0; i < a.floats.size(); ++i) os << (i ? "," : "") << a.floats[i]; break;
    case Attribute::Kind::kInts: for (size_t i = 0; i < a.ints.size(); ++i) os << (i ? "," : "") << a.ints[i]; break;
    case Attribute::Kind::kStrings: for (size_t i = 0; i < a.strings.size(); ++i) os << (i ? "," : "") << a.strings[i]; break;
    case Attribute::Kind::kTensor: os << "tensor" << (a.t ? shapeToString(a.t->shape) : ""); break;
    case Attribute::Kind::kGraph: os << "graph"; break;
  }
  return os.str();
}

bool fasterThan(const TimingEntry& a, const TimingEntry& b) { return a.ms < b.ms || (a.ms == b.ms && a.tactic < b.tactic); }
}  // namespace

std::string TimingCache::layerSignature(const Node& n, const std::vector<std::pair<DataType, Shape>>& inputs) {
  std::string s = n.opType + "|" + n.domain + "|" + n.precision + "|";
  for (size_t i = 0; i < inputs.size(); ++i)
    s += (i ? ";" : "") + std::string(dataTypeName(inputs[i].first)) + "[" + shapeToString(inputs[i].second) + "]";
  s += "|";
  bool first = true;
  for (const auto& kv : n.attrs.values) {  // std::map: sorted by name
    s += (first ? "" : ";") + kv.first + "=" + attrText(kv.second);
    first = false;
  }
  for (char& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

const TimingEntry* TimingCache::find(const TimingKey& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

void TimingCache::record(const TimingKey& key, const TimingEntry& e) {
  auto it = entries_.find(key);
  if (it == entries_.end() || fasterThan(e, it->second)) entries_[key] = e;
}

void TimingCache::merge(const TimingCache& other) {
  for (const auto& kv : other.entries_) record(kv.first, kv.second);
}

size_t TimingCache::pruneOtherVersions(const std::string& version) {
  size_t dropped = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first.optimizerVersion != version) {
      it = entries_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

std::string TimingCache::serialize() const {
  std::string out = std::string(kHeader) + "\n";
  char ms[64];
  for (const auto& kv : entries_) {
    std::snprintf(ms, sizeof(ms), "%.6f", kv.second.ms);
    out += kv.first.optimizerVersion + "\t" + std::to_string(kv.first.sm) + "\t" + kv.first.signature + "\t" +
           std::to_string(kv.second.tactic) + "\t" + ms + "\n";
  }
  return out;
}

TimingCache TimingCache::parse(const std::string& text) {
  TimingCache c;
  std::istringstream in(text);
  std::string line;
  size_t lineNo = 0;
  auto bad = [&](const std::string& why) {
    throw BuildError(ErrorCode::kParse, "timing cache line " + std::to_string(lineNo) + ": " + why);
  };
  while (std::getline(in, line)) {
    ++lineNo;
    if (lineNo == 1) {
      if (line != kHeader) bad("expected header '" + std::string(kHeader) + "'");
      continue;
    }
    if (line.empty()) continue;
    std::vector<std::string> f;
    size_t start = 0;
    for (;;) {
      const size_t tab = line.find('\t', start);
      f.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    if (f.size() != 5) bad("expected 5 tab-separated fields, got " + std::to_string(f.size()));
    try {
      size_t used = 0;
      TimingKey k{f[0], std::stoi(f[1], &used), f[2]};
      if (used != f[1].size()) bad("bad SM '" + f[1] + "'");
      TimingEntry e;
      e.tactic = std::stoll(f[3], &used);
      if (used != f[3].size()) bad("bad tactic '" + f[3] + "'");
      e.ms = std::stod(f[4], &used);
      if (used != f[4].size() || !(e.ms >= 0)) bad("bad time '" + f[4] + "'");
      c.record(k, e);
    } catch (const std::logic_error&) {
      bad("bad number");
    }
  }
  if (lineNo == 0) bad("empty file");
  return c;
}

TimingCache TimingCache::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return TimingCache{};
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse(ss.str());
}

void TimingCache::save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw BuildError(ErrorCode::kIo, "cannot write timing cache " + tmp);
    const std::string s = serialize();
    f.write(s.data(), static_cast<std::streamsize>(s.size()));
    if (!f) throw BuildError(ErrorCode::kIo, "cannot write timing cache " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw BuildError(ErrorCode::kIo, "cannot rename timing cache to " + path);
}

}  // namespace gpu
}  // namespace planforge
