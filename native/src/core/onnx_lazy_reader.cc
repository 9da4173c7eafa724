#include "onnx_lazy_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>

#include <onnx/onnx_pb.h>

#include "tensor.h"

namespace planforge {

// ---------- sources ----------

namespace {

class FileSource : public ByteSource {
 public:
  FileSource(int fd, uint64_t size, std::string path, std::string what) : fd_(fd), size_(size), path_(std::move(path)), what_(std::move(what)) {}
  ~FileSource() override { ::close(fd_); }
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* dst, size_t n) const override {
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) throw BuildError(ErrorCode::kIo, "cannot read " + what_ + " " + path_);
      p += got;
      offset += static_cast<uint64_t>(got);
      n -= static_cast<size_t>(got);
    }
  }

 private:
  int fd_;
  uint64_t size_;
  std::string path_, what_;
};

class MemorySource : public ByteSource {
 public:
  explicit MemorySource(const std::string& bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, void* dst, size_t n) const override {
    if (n) std::memcpy(dst, bytes_.data() + offset, n);
  }

 private:
  const std::string& bytes_;
};

}  // namespace

std::unique_ptr<ByteSource> openFileByteSource(const std::string& path, uint64_t limit, const char* what) {
  // Same checks and messages as readWholeFile in onnx_import.cc.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw BuildError(ErrorCode::kIo, std::string("cannot open ") + what + " " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw BuildError(ErrorCode::kIo, std::string(what) + " " + path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > limit)
    throw BuildError(ErrorCode::kResource, std::string(what) + " " + path + " is " + std::to_string(st.st_size) +
                                               " bytes, over the limit of " + std::to_string(limit));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw BuildError(ErrorCode::kIo, std::string("cannot open ") + what + " " + path);
  return std::make_unique<FileSource>(fd, static_cast<uint64_t>(st.st_size), path, what);
}

std::unique_ptr<ByteSource> memoryByteSource(const std::string& bytes) { return std::make_unique<MemorySource>(bytes); }

// ---------- markers ----------

namespace {

void appendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool parseVarint(const std::string& s, size_t pos, uint64_t* v) {
  uint64_t r = 0;
  for (int i = 0; i < 10 && pos < s.size(); ++i, ++pos) {
    uint8_t b = static_cast<uint8_t>(s[pos]);
    r |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if (b < 0x80) {
      *v = r;
      return pos + 1 == s.size();
    }
  }
  return false;
}

}  // namespace

std::vector<size_t> StrippedModel::markersOf(const onnx::TensorProto& p) const {
  std::vector<size_t> out;
  const auto& unknown = p.unknown_fields();
  for (int i = 0; i < unknown.field_count(); ++i) {
    const auto& f = unknown.field(i);
    if (f.number() != static_cast<int>(kStrippedTensorMarkerField) || f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const std::string& v = f.length_delimited();
    uint64_t index = 0;
    if (v.size() <= markerKey.size() || v.compare(0, markerKey.size(), markerKey) != 0) continue;
    if (!parseVarint(v, markerKey.size(), &index) || index >= tensors.size()) continue;
    out.push_back(static_cast<size_t>(index));
  }
  return out;
}

// ---------- the walk ----------

namespace {

// protobuf's default recursion limit: deeper messages are copied whole (protobuf then rejects them).
constexpr int kMaxDepth = 100;

enum class Msg { kModel, kGraph, kNode, kAttribute, kTensor, kSparseTensor, kFunction, kTrainingInfo, kOther };

// Which length-delimited fields protobuf parses as one of the messages that can hold tensors.
Msg childOf(Msg m, uint32_t field) {
  switch (m) {
    case Msg::kModel:
      if (field == onnx::ModelProto::kGraphFieldNumber) return Msg::kGraph;
      if (field == onnx::ModelProto::kTrainingInfoFieldNumber) return Msg::kTrainingInfo;
      if (field == onnx::ModelProto::kFunctionsFieldNumber) return Msg::kFunction;
      return Msg::kOther;
    case Msg::kGraph:
      if (field == onnx::GraphProto::kNodeFieldNumber) return Msg::kNode;
      if (field == onnx::GraphProto::kInitializerFieldNumber) return Msg::kTensor;
      if (field == onnx::GraphProto::kSparseInitializerFieldNumber) return Msg::kSparseTensor;
      return Msg::kOther;
    case Msg::kNode:
      return field == onnx::NodeProto::kAttributeFieldNumber ? Msg::kAttribute : Msg::kOther;
    case Msg::kAttribute:
      if (field == onnx::AttributeProto::kTFieldNumber || field == onnx::AttributeProto::kTensorsFieldNumber) return Msg::kTensor;
      if (field == onnx::AttributeProto::kGFieldNumber || field == onnx::AttributeProto::kGraphsFieldNumber) return Msg::kGraph;
      if (field == onnx::AttributeProto::kSparseTensorFieldNumber || field == onnx::AttributeProto::kSparseTensorsFieldNumber)
        return Msg::kSparseTensor;
      return Msg::kOther;
    case Msg::kSparseTensor:
      if (field == onnx::SparseTensorProto::kValuesFieldNumber || field == onnx::SparseTensorProto::kIndicesFieldNumber) return Msg::kTensor;
      return Msg::kOther;
    case Msg::kFunction:
      return field == onnx::FunctionProto::kNodeFieldNumber ? Msg::kNode : Msg::kOther;
    case Msg::kTrainingInfo:
      if (field == onnx::TrainingInfoProto::kInitializationFieldNumber || field == onnx::TrainingInfoProto::kAlgorithmFieldNumber)
        return Msg::kGraph;
      return Msg::kOther;
    default:
      return Msg::kOther;
  }
}

// Sequential reads through a buffer over the source.
class Cursor {
 public:
  explicit Cursor(const ByteSource& src) : src_(src), size_(src.size()), buf_(kBufSize) {}
  uint64_t pos() const { return pos_; }
  uint64_t size() const { return size_; }
  void seek(uint64_t p) { pos_ = p; }
  [[noreturn]] void fail() const { throw WireFormatError{size_}; }

  uint8_t next(uint64_t end) {
    if (pos_ >= end || pos_ >= size_) fail();
    if (pos_ < bufStart_ || pos_ >= bufStart_ + bufLen_) fill();
    return static_cast<uint8_t>(buf_[static_cast<size_t>(pos_++ - bufStart_)]);
  }
  // A varint of at most maxBytes bytes ending before `end` (protobuf: tags 5, values 10 bytes).
  uint64_t varint(uint64_t end, int maxBytes) {
    uint64_t v = 0;
    for (int i = 0; i < maxBytes; ++i) {
      uint8_t b = next(end);
      if (i < 10) v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if (b < 0x80) return v;
    }
    fail();
  }
  // A length prefix as protobuf's ReadSize takes it: at most 5 bytes, below 2 GiB.
  uint64_t length(uint64_t end) {
    uint64_t start = pos_;
    uint64_t v = varint(end, 5);
    if (pos_ - start == 5 && v >= (1ull << 31) - 16) fail();
    if (v > end - pos_) fail();  // runs past its message (or the file)
    return v;
  }
  void skip(uint64_t n, uint64_t end) {
    if (n > end - pos_) fail();
    pos_ += n;
  }
  // Appends source bytes [from, to) to out.
  void append(uint64_t from, uint64_t to, std::string& out) {
    if (to > size_) fail();
    copied_ += to - from;
    if (copied_ > kMaxStrippedModelBytes) {
      // Only structure is copied (nodes, names, attributes, small tensors): a real model's is a few
      // MiB. More is a file made to cost memory (e.g. a field repeated a billion times).
      throw BuildError(ErrorCode::kResource, "the model without its large tensor payloads is over " +
                                                 std::to_string(kMaxStrippedModelBytes >> 20) +
                                                 " MiB (graph structure, names, attributes and small tensors): refused");
    }
    if (from >= bufStart_ && to <= bufStart_ + bufLen_) {
      out.append(buf_.data() + (from - bufStart_), static_cast<size_t>(to - from));
      return;
    }
    size_t old = out.size();
    out.resize(old + static_cast<size_t>(to - from));
    if (to > from) src_.read(from, &out[old], static_cast<size_t>(to - from));
  }

 private:
  static constexpr size_t kBufSize = 1 << 20;
  void fill() {
    bufStart_ = pos_;
    bufLen_ = static_cast<size_t>(std::min<uint64_t>(kBufSize, size_ - pos_));
    src_.read(bufStart_, buf_.data(), bufLen_);
  }
  const ByteSource& src_;
  uint64_t size_;
  std::vector<char> buf_;
  uint64_t copied_ = 0;
  uint64_t bufStart_ = 0;
  size_t bufLen_ = 0;
  uint64_t pos_ = 0;
};

class Walker {
 public:
  Walker(const ByteSource& src, uint64_t keep, StrippedModel& out) : c_(src), keep_(keep), out_(out) {}

  void run() { walk(Msg::kModel, c_.size(), out_.bytes, 0, nullptr); }

 private:
  // Walks the fields of a message ending at `end`, appending its stripped bytes to `out`.
  // Returns false when the message must be copied whole instead (the caller rewinds).
  bool walk(Msg m, uint64_t end, std::string& out, int depth, StrippedTensor* tensor) {
    int tensorFields = 0;  // AttributeProto.t occurrences: protobuf merges repeats, keep those whole
    while (c_.pos() < end) {
      const uint64_t tagStart = c_.pos();
      const uint32_t tag = static_cast<uint32_t>(c_.varint(end, 5));
      if (tag == 0 || (tag & 7) == 4) {
        // protobuf stops at a zero tag or an end-group tag: the top-level message then did not
        // consume the whole file (reported at this position), a nested one fails.
        if (depth == 0) {
          out_.stoppedAt = c_.pos();
          return true;
        }
        c_.fail();
      }
      const uint32_t field = tag >> 3;
      const uint32_t wire = tag & 7;
      if (field == 0) c_.fail();
      if (tensor && payloadField(field, wire, end, *tensor)) continue;
      switch (wire) {
        case 0: c_.varint(end, 10); break;
        case 1: c_.skip(8, end); break;
        case 5: c_.skip(4, end); break;
        case 3: skipGroup(field, end); break;
        case 2: {
          const uint64_t lenStart = c_.pos();
          const uint64_t len = c_.length(end);
          const uint64_t start = c_.pos();
          Msg child = childOf(m, field);
          if (m == Msg::kAttribute && field == onnx::AttributeProto::kTFieldNumber && ++tensorFields > 1) return false;
          if (child == Msg::kOther || depth + 1 > kMaxDepth || (child == Msg::kTensor && len <= keep_)) {
            c_.skip(len, end);
            break;
          }
          std::string sub;
          bool ok;
          if (child == Msg::kTensor) {
            size_t index = out_.tensors.size();
            out_.tensors.emplace_back();
            StrippedTensor st;
            st.offset = start;
            st.length = len;
            ok = walk(child, start + len, sub, depth + 1, &st);
            if (ok) {
              out_.tensors[index] = st;
              std::string marker = out_.markerKey;
              appendVarint(marker, index);
              appendVarint(sub, (static_cast<uint64_t>(kStrippedTensorMarkerField) << 3) | 2);
              appendVarint(sub, marker.size());
              sub += marker;
            }
          } else {
            ok = walk(child, start + len, sub, depth + 1, nullptr);
          }
          if (!ok) {
            sub.clear();
            c_.append(start, start + len, sub);
            c_.seek(start + len);
          }
          c_.append(tagStart, lenStart, out);  // the tag as it was written
          appendVarint(out, sub.size());
          out += sub;
          continue;
        }
        default:
          c_.fail();  // wire types 6 and 7 do not exist
      }
      c_.append(tagStart, c_.pos(), out);
    }
    return true;
  }

  // TensorProto payload fields with the wire types protobuf parses them with: counted and
  // skipped. Other wire types are unknown fields to protobuf and are copied like any field.
  bool payloadField(uint32_t field, uint32_t wire, uint64_t end, StrippedTensor& t) {
    switch (field) {
      case onnx::TensorProto::kFloatDataFieldNumber:
      case onnx::TensorProto::kDoubleDataFieldNumber: {
        const uint64_t width = field == onnx::TensorProto::kFloatDataFieldNumber ? 4 : 8;
        uint64_t& count = width == 4 ? t.floatCount : t.doubleCount;
        if (wire == 2) {
          uint64_t len = c_.length(end);
          if (len % width != 0) c_.fail();  // a packed fixed-width field must hold whole values
          count += len / width;
          c_.skip(len, end);
          return true;
        }
        if (wire == (width == 4 ? 5u : 1u)) {
          c_.skip(width, end);
          ++count;
          return true;
        }
        return false;
      }
      case onnx::TensorProto::kInt32DataFieldNumber:
      case onnx::TensorProto::kInt64DataFieldNumber:
      case onnx::TensorProto::kUint64DataFieldNumber: {
        uint64_t& count = field == onnx::TensorProto::kInt32DataFieldNumber   ? t.int32Count
                          : field == onnx::TensorProto::kInt64DataFieldNumber ? t.int64Count
                                                                               : t.uint64Count;
        if (wire == 2) {
          uint64_t len = c_.length(end);
          const uint64_t stop = c_.pos() + len;
          while (c_.pos() < stop) {
            c_.varint(stop, 10);  // a varint running past the packed field fails protobuf too
            ++count;
          }
          return true;
        }
        if (wire == 0) {
          c_.varint(end, 10);
          ++count;
          return true;
        }
        return false;
      }
      case onnx::TensorProto::kStringDataFieldNumber:
        if (wire != 2) return false;
        c_.skip(c_.length(end), end);
        return true;
      case onnx::TensorProto::kRawDataFieldNumber:
        if (wire != 2) return false;
        t.hasRawData = true;
        t.rawDataBytes = c_.length(end);
        c_.skip(t.rawDataBytes, end);
        return true;
      default:
        return false;
    }
  }

  // An unknown group: nested fields up to the matching end-group tag (protobuf checks the match).
  void skipGroup(uint32_t field, uint64_t end) {
    std::vector<uint32_t> open{field};
    while (!open.empty()) {
      const uint32_t tag = static_cast<uint32_t>(c_.varint(end, 5));
      if (tag == 0) c_.fail();
      const uint32_t f = tag >> 3, w = tag & 7;
      if (w == 4) {
        if (f != open.back()) c_.fail();
        open.pop_back();
        continue;
      }
      if (f == 0) c_.fail();
      switch (w) {
        case 0: c_.varint(end, 10); break;
        case 1: c_.skip(8, end); break;
        case 5: c_.skip(4, end); break;
        case 2: c_.skip(c_.length(end), end); break;
        case 3: open.push_back(f); break;
        default: c_.fail();
      }
    }
  }

  Cursor c_;
  uint64_t keep_;
  StrippedModel& out_;
};

}  // namespace

StrippedModel stripModel(const ByteSource& src, uint64_t keepTensorBytes) {
  StrippedModel out;
  uint64_t seed[2] = {static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()),
                      reinterpret_cast<uintptr_t>(&out)};
  try {
    std::random_device rd;
    seed[0] ^= (static_cast<uint64_t>(rd()) << 32) | rd();
    seed[1] ^= (static_cast<uint64_t>(rd()) << 32) | rd();
  } catch (const std::exception&) {
    // no entropy source: the clock and an address still make the key unguessable from the file
  }
  std::mt19937_64 mix(seed[0] ^ (seed[1] * 0x9e3779b97f4a7c15ull));
  out.markerKey = "pf-strip:";
  for (int i = 0; i < 2; ++i) {
    uint64_t r = mix();
    out.markerKey.append(reinterpret_cast<const char*>(&r), sizeof r);
  }
  Walker(src, keepTensorBytes, out).run();
  return out;
}

}  // namespace planforge
