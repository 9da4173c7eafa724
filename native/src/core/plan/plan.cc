#include "plan.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include "../sha256.h"

namespace planforge {

namespace {

constexpr char kMagic[8] = {'P', 'F', 'P', 'L', 'A', 'N', '\0', '\1'};
constexpr size_t kAlign = 64;
constexpr size_t kChecksumSize = 32;

enum SectionId : uint32_t {
  kSectionHeader = 1,
  kSectionLayers = 2,
  kSectionWeights = 3,
  kSectionKernels = 4,
  kSectionCalibration = 5,
  kSectionPassStats = 6,
};

const char* sectionName(uint32_t id) {
  switch (id) {
    case kSectionHeader: return "header";
    case kSectionLayers: return "layers";
    case kSectionWeights: return "weights";
    case kSectionKernels: return "kernels";
    case kSectionCalibration: return "calibration";
    case kSectionPassStats: return "pass statistics";
  }
  return "unknown";
}

[[noreturn]] void formatError(const std::string& msg) { throw BuildError(ErrorCode::kPlanFormat, "invalid plan: " + msg); }

// ---------- writer ----------

class Writer {
 public:
  std::vector<uint8_t> buf;
  void u8(uint8_t v) { buf.push_back(v); }
  void u32(uint32_t v) { for (int i = 0; i < 4; ++i) buf.push_back(uint8_t(v >> (8 * i))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) buf.push_back(uint8_t(v >> (8 * i))); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void f32(float v) { uint32_t b; std::memcpy(&b, &v, 4); u32(b); }
  void str(const std::string& s) { u32(static_cast<uint32_t>(s.size())); buf.insert(buf.end(), s.begin(), s.end()); }
  void bytes(const uint8_t* p, size_t n) { buf.insert(buf.end(), p, p + n); }
  void shape(const Shape& s) { u32(static_cast<uint32_t>(s.size())); for (int64_t d : s) i64(d); }
  void strs(const std::vector<std::string>& v) { u32(static_cast<uint32_t>(v.size())); for (const auto& s : v) str(s); }
  void pad(size_t align) { while (buf.size() % align) buf.push_back(0); }
};

// ---------- reader ----------

class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const char* section) : p_(p), n_(n), section_(section) {}
  size_t remaining() const { return n_ - pos_; }
  size_t pos() const { return pos_; }
  void need(size_t k) {
    if (k > remaining()) formatError(std::string(section_) + " section is truncated (needs " + std::to_string(k) + " more bytes at offset " +
                                     std::to_string(pos_) + ", has " + std::to_string(remaining()) + ")");
  }
  uint8_t u8() { need(1); return p_[pos_++]; }
  uint32_t u32() { need(4); uint32_t v = 0; for (int i = 0; i < 4; ++i) v |= uint32_t(p_[pos_ + i]) << (8 * i); pos_ += 4; return v; }
  uint64_t u64() { need(8); uint64_t v = 0; for (int i = 0; i < 8; ++i) v |= uint64_t(p_[pos_ + i]) << (8 * i); pos_ += 8; return v; }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  float f32() { uint32_t b = u32(); float f; std::memcpy(&f, &b, 4); return f; }
  std::string str() {
    uint32_t n = u32();
    need(n);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return s;
  }
  // A count of items each at least minItemBytes long: bounded by what is left, so a corrupted
  // count can never trigger a huge allocation.
  uint32_t count(size_t minItemBytes, const char* what) {
    uint32_t n = u32();
    if (minItemBytes && n > remaining() / minItemBytes)
      formatError(std::string(section_) + " section: " + what + " count " + std::to_string(n) + " exceeds the section size");
    return n;
  }
  Shape shape() {
    uint32_t r = count(8, "dimension");
    if (r > 64) formatError(std::string(section_) + " section: rank " + std::to_string(r) + " is too large");
    Shape s(r);
    for (auto& d : s) d = i64();
    return s;
  }
  std::vector<std::string> strs(const char* what) {
    uint32_t n = count(4, what);
    std::vector<std::string> v(n);
    for (auto& s : v) s = str();
    return v;
  }
  const uint8_t* bytesAt(size_t offset, size_t n) {
    if (offset > n_ || n > n_ - offset) formatError(std::string(section_) + " section: data range out of bounds");
    return p_ + offset;
  }
  void skip(size_t k) { need(k); pos_ += k; }
  void expectEnd() {
    if (remaining() != 0) formatError(std::string(section_) + " section has " + std::to_string(remaining()) + " unexpected trailing bytes");
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  const char* section_;
};

bool validDtype(int32_t t) {
  switch (static_cast<DataType>(t)) {
    case DataType::kFloat: case DataType::kUint8: case DataType::kInt8: case DataType::kUint16: case DataType::kInt16:
    case DataType::kInt32: case DataType::kInt64: case DataType::kBool: case DataType::kFloat16: case DataType::kDouble:
    case DataType::kUint32: case DataType::kUint64: case DataType::kBFloat16:
      return true;
    default:
      return false;
  }
}

void writeType(Writer& w, const ValueType& t) {
  w.u32(static_cast<uint32_t>(t.dtype));
  w.u8(t.hasShape ? 1 : 0);
  w.shape(t.dims);
  for (size_t i = 0; i < t.dims.size(); ++i) w.str(i < t.dimParams.size() ? t.dimParams[i] : "");
}

ValueType readType(Reader& r) {
  ValueType t;
  uint32_t dt = r.u32();
  if (dt != 0 && !validDtype(static_cast<int32_t>(dt))) formatError("unknown element type " + std::to_string(dt));
  t.dtype = static_cast<DataType>(dt);
  t.hasShape = r.u8() != 0;
  t.dims = r.shape();
  t.dimParams.resize(t.dims.size());
  for (auto& p : t.dimParams) p = r.str();
  return t;
}

void writeTensorInline(Writer& w, const Tensor& t) {
  w.u32(static_cast<uint32_t>(t.dtype));
  w.shape(t.shape);
  w.u64(t.bytes.size());
  w.bytes(t.bytes.data(), t.bytes.size());
}

// Checked tensor construction from untrusted dtype/shape/byte count.
Tensor makeTensor(uint32_t dtype, const Shape& shape, uint64_t nbytes, const std::string& what) {
  if (!validDtype(static_cast<int32_t>(dtype))) formatError(what + " has unknown element type " + std::to_string(dtype));
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) formatError(what + " has a negative dimension");
    if (d != 0 && numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) formatError(what + " has an overflowing shape");
    numel *= static_cast<uint64_t>(d);
  }
  uint64_t elem = dataTypeSize(static_cast<DataType>(dtype));
  if (numel > std::numeric_limits<uint64_t>::max() / elem || numel * elem != nbytes)
    formatError(what + " has " + std::to_string(nbytes) + " bytes, which does not match its shape " + shapeToString(shape));
  Tensor t;
  t.dtype = static_cast<DataType>(dtype);
  t.shape = shape;
  return t;
}

Tensor readTensorInline(Reader& r, const std::string& what) {
  uint32_t dtype = r.u32();
  Shape shape = r.shape();
  uint64_t nbytes = r.u64();
  Tensor t = makeTensor(dtype, shape, nbytes, what);
  r.need(static_cast<size_t>(std::min<uint64_t>(nbytes, SIZE_MAX)));
  const uint8_t* p = r.bytesAt(r.pos(), static_cast<size_t>(nbytes));
  t.bytes.assign(p, p + nbytes);
  r.skip(static_cast<size_t>(nbytes));
  return t;
}

// ---------- sections ----------

std::vector<uint8_t> encodeHeader(const Plan& plan) {
  Writer w;
  const PlanHeader& h = plan.header;
  const Graph& g = plan.graph;
  w.str(h.optimizerVersion);
  w.u32(static_cast<uint32_t>(h.targetSm));
  w.str(h.precision);
  w.str(h.modelSha256);
  w.str(h.specHash);
  w.u8(h.tuned ? 1 : 0);
  w.i64(h.nodesBefore);
  w.i64(h.nodesAfter);
  w.i64(g.irVersion);
  w.u32(static_cast<uint32_t>(g.opset));
  w.u32(static_cast<uint32_t>(g.opsetImports.size()));
  for (const auto& kv : g.opsetImports) { w.str(kv.first); w.i64(kv.second); }
  w.str(g.producerName);
  w.str(g.producerVersion);
  w.str(g.name);
  w.strs(g.inputs);
  w.strs(g.outputs);
  w.u32(static_cast<uint32_t>(plan.profiles.size()));
  for (const auto& p : plan.profiles) { w.str(p.input); w.shape(p.min); w.shape(p.opt); w.shape(p.max); }
  return w.buf;
}

void decodeHeader(Reader& r, Plan& plan) {
  PlanHeader& h = plan.header;
  Graph& g = plan.graph;
  h.optimizerVersion = r.str();
  h.targetSm = static_cast<int>(r.u32());
  h.precision = r.str();
  if (h.precision != "fp32" && h.precision != "fp16" && h.precision != "int8") formatError("unknown precision '" + h.precision + "'");
  h.modelSha256 = r.str();
  h.specHash = r.str();
  h.tuned = r.u8() != 0;
  h.nodesBefore = r.i64();
  h.nodesAfter = r.i64();
  g.irVersion = r.i64();
  g.opset = static_cast<int>(r.u32());
  uint32_t nOpsets = r.count(12, "opset");
  for (uint32_t i = 0; i < nOpsets; ++i) { std::string d = r.str(); g.opsetImports[d] = r.i64(); }
  g.producerName = r.str();
  g.producerVersion = r.str();
  g.name = r.str();
  g.inputs = r.strs("input");
  g.outputs = r.strs("output");
  uint32_t nProfiles = r.count(16, "profile");
  for (uint32_t i = 0; i < nProfiles; ++i) {
    PlanProfile p;
    p.input = r.str();
    p.min = r.shape();
    p.opt = r.shape();
    p.max = r.shape();
    if (p.min.size() != p.opt.size() || p.opt.size() != p.max.size()) formatError("profile for '" + p.input + "' has mismatched ranks");
    plan.profiles.push_back(std::move(p));
  }
  r.expectEnd();
}

void writeAttribute(Writer& w, const std::string& name, const Attribute& a) {
  w.str(name);
  w.u8(static_cast<uint8_t>(a.kind));
  switch (a.kind) {
    case Attribute::Kind::kFloat: w.f32(a.f); break;
    case Attribute::Kind::kInt: w.i64(a.i); break;
    case Attribute::Kind::kString: w.str(a.s); break;
    case Attribute::Kind::kTensor: writeTensorInline(w, a.t ? *a.t : Tensor()); break;
    case Attribute::Kind::kFloats: w.u32(static_cast<uint32_t>(a.floats.size())); for (float f : a.floats) w.f32(f); break;
    case Attribute::Kind::kInts: w.u32(static_cast<uint32_t>(a.ints.size())); for (int64_t i : a.ints) w.i64(i); break;
    case Attribute::Kind::kStrings: w.strs(a.strings); break;
    case Attribute::Kind::kGraph: break;
  }
}

Attribute readAttribute(Reader& r, const std::string& what) {
  Attribute a;
  uint8_t kind = r.u8();
  if (kind > static_cast<uint8_t>(Attribute::Kind::kGraph)) formatError(what + " has unknown kind " + std::to_string(kind));
  a.kind = static_cast<Attribute::Kind>(kind);
  switch (a.kind) {
    case Attribute::Kind::kFloat: a.f = r.f32(); break;
    case Attribute::Kind::kInt: a.i = r.i64(); break;
    case Attribute::Kind::kString: a.s = r.str(); break;
    case Attribute::Kind::kTensor: a.t = std::make_shared<Tensor>(readTensorInline(r, what)); break;
    case Attribute::Kind::kFloats: { uint32_t n = r.count(4, "float"); a.floats.resize(n); for (auto& f : a.floats) f = r.f32(); break; }
    case Attribute::Kind::kInts: { uint32_t n = r.count(8, "int"); a.ints.resize(n); for (auto& i : a.ints) i = r.i64(); break; }
    case Attribute::Kind::kStrings: a.strings = r.strs("string"); break;
    case Attribute::Kind::kGraph: break;
  }
  return a;
}

std::vector<uint8_t> encodeLayers(const Plan& plan) {
  Writer w;
  const Graph& g = plan.graph;
  w.u32(static_cast<uint32_t>(g.nodes.size()));
  for (const Node& n : g.nodes) {
    w.str(n.opType);
    w.str(n.domain);
    w.str(n.name);
    w.strs(n.inputs);
    w.strs(n.outputs);
    w.str(n.precision);
    w.i64(n.tactic);
    w.strs(n.originalNames);
    w.u32(static_cast<uint32_t>(n.attrs.values.size()));
    for (const auto& kv : n.attrs.values) writeAttribute(w, kv.first, kv.second);
  }
  // Value types (graph inputs/outputs and intermediates) for runtime checks and inspection.
  w.u32(static_cast<uint32_t>(g.types.size()));
  for (const auto& kv : g.types) { w.str(kv.first); writeType(w, kv.second); }
  return w.buf;
}

void decodeLayers(Reader& r, Plan& plan) {
  Graph& g = plan.graph;
  uint32_t n = r.count(40, "layer");
  g.nodes.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    Node& node = g.nodes[i];
    node.opType = r.str();
    node.domain = r.str();
    node.name = r.str();
    node.inputs = r.strs("layer input");
    node.outputs = r.strs("layer output");
    node.precision = r.str();
    node.tactic = r.i64();
    node.originalNames = r.strs("original node name");
    uint32_t nAttrs = r.count(5, "attribute");
    for (uint32_t k = 0; k < nAttrs; ++k) {
      std::string name = r.str();
      node.attrs.values[name] = readAttribute(r, "attribute '" + name + "' of layer '" + node.name + "'");
    }
    if (node.opType.empty() || node.outputs.empty()) formatError("layer " + std::to_string(i) + " has no op type or no outputs");
  }
  uint32_t nTypes = r.count(13, "value type");
  for (uint32_t i = 0; i < nTypes; ++i) {
    std::string name = r.str();
    g.types[name] = readType(r);
  }
  r.expectEnd();
}

// Directory of the weights section; every tensor's bytes start on a 64-byte boundary of the
// data area that follows (offsets are relative to the section start, itself 64-byte aligned).
// Returns the directory; dataSize receives the size of the data area.
std::vector<uint8_t> encodeWeightDirectory(const Plan& plan, size_t& sectionSize) {
  const auto& inits = plan.graph.initializers;
  size_t dirSize = 4;
  for (const auto& kv : inits) dirSize += 4 + kv.first.size() + 4 + 4 + 8 * kv.second.shape.size() + 8 + 8;
  Writer dir;
  dir.u32(static_cast<uint32_t>(inits.size()));
  size_t offset = (dirSize + kAlign - 1) / kAlign * kAlign;
  for (const auto& kv : inits) {
    dir.str(kv.first);
    dir.u32(static_cast<uint32_t>(kv.second.dtype));
    dir.shape(kv.second.shape);
    dir.u64(offset);
    dir.u64(kv.second.bytes.size());
    offset += (kv.second.bytes.size() + kAlign - 1) / kAlign * kAlign;
  }
  sectionSize = std::max(offset, (dirSize + kAlign - 1) / kAlign * kAlign);
  return dir.buf;
}

void decodeWeights(Reader& r, Plan& plan) {
  uint32_t n = r.count(28, "weight");
  std::set<std::pair<uint64_t, uint64_t>> ranges;
  for (uint32_t i = 0; i < n; ++i) {
    std::string name = r.str();
    uint32_t dtype = r.u32();
    Shape shape = r.shape();
    uint64_t offset = r.u64();
    uint64_t size = r.u64();
    std::string what = "weight '" + name + "'";
    Tensor t = makeTensor(dtype, shape, size, what);
    if (offset % kAlign) formatError(what + " is not 64-byte aligned");
    const uint8_t* p = r.bytesAt(static_cast<size_t>(std::min<uint64_t>(offset, SIZE_MAX)), static_cast<size_t>(std::min<uint64_t>(size, SIZE_MAX)));
    t.bytes.assign(p, p + size);
    if (!plan.graph.initializers.emplace(name, std::move(t)).second) formatError(what + " appears twice");
  }
}

std::vector<uint8_t> encodeKernels(const Plan& plan) {
  Writer w;
  w.u32(static_cast<uint32_t>(plan.kernels.size()));
  for (const auto& k : plan.kernels) {
    w.u32(static_cast<uint32_t>(k.sm));
    w.str(k.name);
    w.u64(k.image.size());
    w.bytes(k.image.data(), k.image.size());
  }
  return w.buf;
}

void decodeKernels(Reader& r, Plan& plan) {
  uint32_t n = r.count(16, "kernel");
  for (uint32_t i = 0; i < n; ++i) {
    KernelBlob k;
    k.sm = static_cast<int>(r.u32());
    k.name = r.str();
    uint64_t size = r.u64();
    r.need(static_cast<size_t>(std::min<uint64_t>(size, SIZE_MAX)));
    const uint8_t* p = r.bytesAt(r.pos(), static_cast<size_t>(size));
    k.image.assign(p, p + size);
    r.skip(static_cast<size_t>(size));
    plan.kernels.push_back(std::move(k));
  }
  r.expectEnd();
}

std::vector<uint8_t> encodeCalibration(const Plan& plan) {
  Writer w;
  w.str(plan.calibration.method);
  w.u32(static_cast<uint32_t>(plan.calibration.amax.size()));
  for (const auto& kv : plan.calibration.amax) { w.str(kv.first); w.f32(kv.second); }
  return w.buf;
}

void decodeCalibration(Reader& r, Plan& plan) {
  plan.calibration.method = r.str();
  uint32_t n = r.count(8, "calibration entry");
  for (uint32_t i = 0; i < n; ++i) {
    std::string name = r.str();
    plan.calibration.amax[name] = r.f32();
  }
  r.expectEnd();
}

std::vector<uint8_t> encodePassStats(const Plan& plan) {
  Writer w;
  w.u32(static_cast<uint32_t>(plan.passes.size()));
  for (const auto& p : plan.passes) { w.str(p.id); w.i64(p.nodesBefore); w.i64(p.nodesAfter); w.strs(p.changes); }
  return w.buf;
}

void decodePassStats(Reader& r, Plan& plan) {
  uint32_t n = r.count(24, "pass");
  for (uint32_t i = 0; i < n; ++i) {
    PassStats s;
    s.id = r.str();
    s.nodesBefore = r.i64();
    s.nodesAfter = r.i64();
    s.changes = r.strs("change");
    plan.passes.push_back(std::move(s));
  }
  r.expectEnd();
}

}  // namespace

namespace {

// Emits the plan bytes in order through sink(data, size). Weights (possibly gigabytes) go from
// the tensors to the sink directly, so neither serializing in memory nor streaming to a file
// ever holds a second copy of them.
template <typename Sink>
void emitPlan(const Plan& plan, Sink&& sink, std::string* fileSha256) {
  size_t weightsSize = 0;
  const std::vector<uint8_t> weightDir = encodeWeightDirectory(plan, weightsSize);
  // Section contents except the weights' data, which is emitted in place.
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> sections;
  sections.emplace_back(kSectionHeader, encodeHeader(plan));
  sections.emplace_back(kSectionLayers, encodeLayers(plan));
  sections.emplace_back(kSectionWeights, std::vector<uint8_t>());
  sections.emplace_back(kSectionKernels, encodeKernels(plan));
  sections.emplace_back(kSectionCalibration, encodeCalibration(plan));
  sections.emplace_back(kSectionPassStats, encodePassStats(plan));
  auto sizeOf = [&](const std::pair<uint32_t, std::vector<uint8_t>>& s) {
    return s.first == kSectionWeights ? weightsSize : s.second.size();
  };

  Sha256 h;
  size_t pos = 0;
  auto put = [&](const uint8_t* p, size_t n) {
    if (!n) return;
    h.update(p, n);
    sink(p, n);
    pos += n;
  };
  auto pad = [&] {
    static const uint8_t zeros[kAlign] = {};
    put(zeros, (kAlign - pos % kAlign) % kAlign);
  };

  Writer table;
  const size_t tableEnd = sizeof(kMagic) + 8 + sections.size() * 24;
  table.bytes(reinterpret_cast<const uint8_t*>(kMagic), sizeof(kMagic));
  table.u32(kPlanFormatVersion);
  table.u32(static_cast<uint32_t>(sections.size()));
  size_t offset = (tableEnd + kAlign - 1) / kAlign * kAlign;
  for (const auto& s : sections) {
    table.u32(s.first);
    table.u32(0);  // reserved (flags)
    table.u64(offset);
    table.u64(sizeOf(s));
    offset = (offset + sizeOf(s) + kAlign - 1) / kAlign * kAlign;
  }
  put(table.buf.data(), table.buf.size());
  for (const auto& s : sections) {
    pad();
    if (s.first != kSectionWeights) {
      put(s.second.data(), s.second.size());
      continue;
    }
    // Sections start 64-byte aligned, so absolute alignment is section-relative alignment.
    put(weightDir.data(), weightDir.size());
    for (const auto& kv : plan.graph.initializers) {
      pad();
      put(kv.second.bytes.data(), kv.second.bytes.size());
    }
  }
  pad();
  Sha256 whole = h;  // state after the body: the file hash only needs the checksum appended
  auto digest = h.digest();
  sink(digest.data(), digest.size());
  if (fileSha256) {
    whole.update(digest.data(), digest.size());
    *fileSha256 = whole.hexDigest();
  }
}

}  // namespace

std::vector<uint8_t> serializePlan(const Plan& plan, std::string* fileSha256) {
  std::vector<uint8_t> out;
  emitPlan(plan, [&](const uint8_t* p, size_t n) { out.insert(out.end(), p, p + n); }, fileSha256);
  return out;
}

uint64_t writePlanFile(const std::string& path, const Plan& plan, std::string* fileSha256) {
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw BuildError(ErrorCode::kIo, "cannot write plan " + path + ": " + std::strerror(errno));
  uint64_t written = 0;
  bool ok = true;
  try {
    emitPlan(plan, [&](const uint8_t* p, size_t n) {
      if (ok && std::fwrite(p, 1, n, f) != n) ok = false;
      written += n;
    }, fileSha256);
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fflush(f) != 0) ok = false;
  if (std::fclose(f) != 0) ok = false;
  if (!ok) {
    std::remove(tmp.c_str());
    throw BuildError(ErrorCode::kIo, "cannot write plan " + path + " (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw BuildError(ErrorCode::kIo, "cannot move plan into place at " + path);
  }
  return written;
}

Plan parsePlan(const uint8_t* data, size_t size) {
  if (size < 16 + kChecksumSize) formatError("file is too short to be a plan (" + std::to_string(size) + " bytes)");
  if (std::memcmp(data, kMagic, 6) != 0) formatError("not a planforge plan (bad magic)");
  if (std::memcmp(data, kMagic, sizeof(kMagic)) != 0) formatError("bad magic: unknown plan container revision");
  Reader head(data, size - kChecksumSize, "plan header");
  head.skip(8);
  uint32_t version = head.u32();
  if (version != kPlanFormatVersion)
    formatError("unsupported plan format version " + std::to_string(version) + " (this optimizer reads version " +
                std::to_string(kPlanFormatVersion) + ")");
  uint32_t nSections = head.count(24, "section");
  struct Entry { uint32_t id; uint64_t offset, size; };
  std::vector<Entry> entries;
  const uint64_t body = size - kChecksumSize;
  for (uint32_t i = 0; i < nSections; ++i) {
    Entry e;
    e.id = head.u32();
    head.u32();
    e.offset = head.u64();
    e.size = head.u64();
    if (e.offset > body || e.size > body - e.offset)
      formatError(std::string("plan is truncated: the ") + sectionName(e.id) + " section ends at byte " +
                  std::to_string(e.offset + e.size) + " but the plan has " + std::to_string(size) + " bytes");
    entries.push_back(e);
  }
  Sha256 h;
  h.update(data, static_cast<size_t>(body));
  auto digest = h.digest();
  if (std::memcmp(digest.data(), data + body, kChecksumSize) != 0)
    formatError("checksum mismatch: the plan is corrupted or truncated");

  Plan plan;
  std::set<uint32_t> seen;
  for (const auto& e : entries) {
    if (!seen.insert(e.id).second) formatError(std::string("duplicate ") + sectionName(e.id) + " section");
    Reader r(data + e.offset, static_cast<size_t>(e.size), sectionName(e.id));
    switch (e.id) {
      case kSectionHeader: decodeHeader(r, plan); break;
      case kSectionLayers: decodeLayers(r, plan); break;
      case kSectionWeights: decodeWeights(r, plan); break;
      case kSectionKernels: decodeKernels(r, plan); break;
      case kSectionCalibration: decodeCalibration(r, plan); break;
      case kSectionPassStats: decodePassStats(r, plan); break;
      default: break;  // unknown sections from newer minor revisions are skipped
    }
  }
  for (uint32_t required : {kSectionHeader, kSectionLayers, kSectionWeights})
    if (!seen.count(required)) formatError(std::string("the ") + sectionName(required) + " section is missing");
  plan.header.formatVersion = version;
  // Structural validation of the layer graph (undefined values, cycles).
  try {
    plan.graph.topologicalSort();
  } catch (const BuildError& e) {
    formatError(std::string("layer graph is inconsistent: ") + e.what());
  }
  for (const auto& p : plan.profiles)
    if (std::find(plan.graph.inputs.begin(), plan.graph.inputs.end(), p.input) == plan.graph.inputs.end())
      formatError("profile names unknown input '" + p.input + "'");
  return plan;
}

Plan loadPlanFile(const std::string& path, const PlanLoadOptions& options) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw BuildError(ErrorCode::kIo, "cannot open plan " + path);
  std::streamoff size = f.tellg();
  if (size < 0) throw BuildError(ErrorCode::kIo, "cannot read plan " + path);
  f.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), size)) throw BuildError(ErrorCode::kIo, "cannot read plan " + path);
  Plan plan = parsePlan(bytes.data(), bytes.size());
  if (options.expectedSm != 0 && plan.header.targetSm != options.expectedSm)
    throw BuildError(ErrorCode::kWrongSm, "plan was built for " + smName(plan.header.targetSm) + " but this device is " +
                                              smName(options.expectedSm));
  return plan;
}

void writePlanFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw BuildError(ErrorCode::kIo, "cannot write plan " + path);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw BuildError(ErrorCode::kIo, "cannot write plan " + path + " (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw BuildError(ErrorCode::kIo, "cannot move plan into place at " + path);
  }
}

void checkInputsAgainstProfiles(const Plan& plan, const std::map<std::string, Tensor>& inputs) {
  for (const auto& p : plan.profiles) {
    auto it = inputs.find(p.input);
    if (it == inputs.end()) continue;  // missing inputs are reported by the executor
    const Shape& s = it->second.shape;
    bool ok = s.size() == p.min.size();
    for (size_t i = 0; ok && i < s.size(); ++i) ok = s[i] >= p.min[i] && s[i] <= p.max[i];
    if (!ok)
      throw BuildError(ErrorCode::kProfile, "input '" + p.input + "' shape " + shapeToString(s) + " is outside the plan's profile (min " +
                                                shapeToString(p.min) + ", max " + shapeToString(p.max) + ")");
  }
}

std::string smName(int sm) { return "sm_" + std::to_string(sm); }

int parseSm(const std::string& s) {
  std::string digits = s.rfind("sm_", 0) == 0 ? s.substr(3) : s;
  if (digits == "80") return 80;
  if (digits == "86") return 86;
  if (digits == "87") return 87;
  if (digits == "90") return 90;
  return 0;
}

}  // namespace planforge
