#include "onnx_import.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include <onnx/onnx_pb.h>

#include "half.h"
#include "onnx_lazy_reader.h"
#include "sha256.h"

namespace planforge {

namespace {

constexpr int kMinOpset = 6;
constexpr int kMaxOpset = 21;

// ---------- files ----------

std::string readWholeFile(const std::string& path, uint64_t limit, const char* what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw BuildError(ErrorCode::kIo, std::string("cannot open ") + what + " " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw BuildError(ErrorCode::kIo, std::string(what) + " " + path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > limit)
    throw BuildError(ErrorCode::kResource, std::string(what) + " " + path + " is " + std::to_string(st.st_size) +
                                               " bytes, over the limit of " + std::to_string(limit));
  std::ifstream f(path, std::ios::binary);
  if (!f) throw BuildError(ErrorCode::kIo, std::string("cannot open ") + what + " " + path);
  std::string data(static_cast<size_t>(st.st_size), '\0');
  if (st.st_size > 0 && !f.read(&data[0], st.st_size)) throw BuildError(ErrorCode::kIo, std::string("cannot read ") + what + " " + path);
  return data;
}

std::string dirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string realPath(const std::string& p) {
  char buf[PATH_MAX];
  if (!::realpath(p.c_str(), buf)) return "";
  return buf;
}

// ---------- tensors ----------

bool supportedTensorType(int32_t t) {
  switch (static_cast<DataType>(t)) {
    case DataType::kFloat: case DataType::kUint8: case DataType::kInt8: case DataType::kUint16: case DataType::kInt16:
    case DataType::kInt32: case DataType::kInt64: case DataType::kBool: case DataType::kFloat16: case DataType::kDouble:
    case DataType::kUint32: case DataType::kUint64: case DataType::kBFloat16:
      return true;
    default:
      return false;
  }
}

std::string tensorLabel(const onnx::TensorProto& p) { return p.name().empty() ? std::string("tensor") : "tensor '" + p.name() + "'"; }

uint64_t parseUnsigned(const std::string& s, const std::string& what) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
    throw BuildError(ErrorCode::kExternalData, "external data " + what + " '" + s + "' is not a non-negative integer");
  return std::stoull(s);
}

// Resolves an external data location inside modelDir; throws for absolute or escaping paths.
std::string resolveExternalPath(const std::string& location, const std::string& modelDir, const std::string& label) {
  if (modelDir.empty())
    throw BuildError(ErrorCode::kExternalData, label + " uses external data, which is not allowed for in-memory models");
  if (location.empty()) throw BuildError(ErrorCode::kExternalData, label + " has external data without a location");
  if (location.find('\0') != std::string::npos) throw BuildError(ErrorCode::kExternalData, label + ": invalid external data location");
  if (location[0] == '/' || location[0] == '\\' || (location.size() > 1 && location[1] == ':'))
    throw BuildError(ErrorCode::kExternalData, label + ": external data location '" + location + "' is an absolute path; only paths inside the model folder are allowed");
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= location.size()) {
    size_t end = location.find_first_of("/\\", start);
    if (end == std::string::npos) end = location.size();
    std::string part = location.substr(start, end - start);
    if (part == "..") {
      if (parts.empty())
        throw BuildError(ErrorCode::kExternalData, label + ": external data location '" + location + "' leaves the model folder");
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  if (parts.empty()) throw BuildError(ErrorCode::kExternalData, label + ": external data location '" + location + "' names no file");
  std::string rel;
  for (const auto& p : parts) rel += (rel.empty() ? "" : "/") + p;
  std::string full = modelDir + "/" + rel;
  std::string realDir = realPath(modelDir);
  std::string realFile = realPath(full);
  if (realFile.empty())
    throw BuildError(ErrorCode::kExternalData, label + ": external data file '" + location + "' not found next to the model");
  // Symlinks must not lead outside the model folder either.
  if (realDir.empty() || realFile.compare(0, realDir.size() + 1, realDir + "/") != 0)
    throw BuildError(ErrorCode::kExternalData, label + ": external data file '" + location + "' resolves outside the model folder");
  return realFile;
}

// keepBytes=false (inspectModel, large tensors): the bytes are read and verified in chunks but not kept.
std::vector<uint8_t> readExternal(const onnx::TensorProto& p, const std::string& modelDir, uint64_t nbytes, bool keepBytes = true) {
  std::string location;
  uint64_t offset = 0;
  bool hasLength = false;
  uint64_t length = 0;
  for (const auto& e : p.external_data()) {
    if (e.key() == "location") location = e.value();
    else if (e.key() == "offset") offset = parseUnsigned(e.value(), "offset");
    else if (e.key() == "length") { length = parseUnsigned(e.value(), "length"); hasLength = true; }
  }
  const std::string label = tensorLabel(p);
  std::string file = resolveExternalPath(location, modelDir, label);
  if (hasLength && length != nbytes)
    throw BuildError(ErrorCode::kExternalData, label + ": external data length " + std::to_string(length) + " does not match its shape (" +
                                                   std::to_string(nbytes) + " bytes)");
  struct stat st;
  if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw BuildError(ErrorCode::kExternalData, label + ": external data file '" + location + "' is not a readable file");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset > size || nbytes > size - offset)
    throw BuildError(ErrorCode::kExternalData, label + ": external data file '" + location + "' is " + std::to_string(size) +
                                                   " bytes, too short for " + std::to_string(nbytes) + " bytes at offset " + std::to_string(offset));
  std::ifstream f(file, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  if (!keepBytes) {
    std::vector<char> chunk(static_cast<size_t>(std::min<uint64_t>(nbytes, 1 << 20)));
    for (uint64_t left = nbytes; left > 0;) {
      const uint64_t n = std::min<uint64_t>(left, chunk.size());
      if (!f.read(chunk.data(), static_cast<std::streamsize>(n)))
        throw BuildError(ErrorCode::kExternalData, label + ": cannot read external data file '" + location + "'");
      left -= n;
    }
    return {};
  }
  std::vector<uint8_t> out(static_cast<size_t>(nbytes));
  if (nbytes && !f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(nbytes)))
    throw BuildError(ErrorCode::kExternalData, label + ": cannot read external data file '" + location + "'");
  return out;
}

template <typename Src, typename Dst>
void copyConverted(const Src& src, Tensor& t) {
  Dst* d = t.data<Dst>();
  for (int i = 0; i < src.size(); ++i) d[i] = static_cast<Dst>(src.Get(i));
}

struct TensorHeader {
  DataType dtype;
  Shape shape;
  uint64_t numel;
  uint64_t nbytes;
};

// The checks tensorFromProto makes before it looks at the payload.
TensorHeader tensorHeader(const onnx::TensorProto& p, const ImportOptions& options) {
  const std::string label = tensorLabel(p);
  if (!supportedTensorType(p.data_type())) {
    std::string tname = p.data_type() == 8 ? "string" : "type " + std::to_string(p.data_type());
    throw BuildError(ErrorCode::kUnsupportedOp, label + " has unsupported element " + tname);
  }
  if (p.has_segment()) throw BuildError(ErrorCode::kUnsupportedOp, label + " is segmented, which is not supported");
  DataType dtype = static_cast<DataType>(p.data_type());
  Shape shape;
  uint64_t numel = 1;
  for (int64_t d : p.dims()) {
    if (d < 0) throw BuildError(ErrorCode::kInvalidModel, label + " has a negative dimension " + std::to_string(d));
    if (d != 0 && numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      throw BuildError(ErrorCode::kResource, label + " declares a shape whose element count overflows");
    numel *= static_cast<uint64_t>(d);
    shape.push_back(d);
  }
  const uint64_t elem = dataTypeSize(dtype);
  if (numel > std::numeric_limits<uint64_t>::max() / elem)
    throw BuildError(ErrorCode::kResource, label + " declares a size that overflows");
  const uint64_t nbytes = numel * elem;
  if (nbytes > options.maxTensorBytes)
    throw BuildError(ErrorCode::kResource, label + " declares " + std::to_string(nbytes) + " bytes (" + dataTypeName(dtype) + " " +
                                               shapeToString(shape) + "), over the per-tensor limit of " + std::to_string(options.maxTensorBytes));
  return TensorHeader{dtype, shape, numel, nbytes};
}

// Element count of the typed field protobuf would read for dtype (count(proto) or count(stripped)).
template <typename Counts>
int64_t typedCount(DataType dtype, const Counts& c) {
  switch (dtype) {
    case DataType::kFloat: return c.floats();
    case DataType::kDouble: return c.doubles();
    case DataType::kInt64: return c.int64s();
    case DataType::kUint32: case DataType::kUint64: return c.uint64s();
    default: return c.int32s();
  }
}

struct ProtoCounts {
  const onnx::TensorProto& p;
  int64_t floats() const { return p.float_data_size(); }
  int64_t doubles() const { return p.double_data_size(); }
  int64_t int64s() const { return p.int64_data_size(); }
  int64_t uint64s() const { return p.uint64_data_size(); }
  int64_t int32s() const { return p.int32_data_size(); }
};

struct StrippedCounts {
  const StrippedTensor& s;
  int64_t floats() const { return static_cast<int64_t>(s.floatCount); }
  int64_t doubles() const { return static_cast<int64_t>(s.doubleCount); }
  int64_t int64s() const { return static_cast<int64_t>(s.int64Count); }
  int64_t uint64s() const { return static_cast<int64_t>(s.uint64Count); }
  int64_t int32s() const { return static_cast<int64_t>(s.int32Count); }
};

[[noreturn]] void rawSizeMismatch(const std::string& label, uint64_t have, const Shape& shape, uint64_t nbytes) {
  throw BuildError(ErrorCode::kInvalidModel, label + " has " + std::to_string(have) + " bytes of raw data, its shape " +
                                                 shapeToString(shape) + " needs " + std::to_string(nbytes));
}

[[noreturn]] void countMismatch(const std::string& label, int64_t count, const Shape& shape, uint64_t numel) {
  throw BuildError(ErrorCode::kInvalidModel, label + " has " + std::to_string(count) + " values, its shape " + shapeToString(shape) +
                                                 " needs " + std::to_string(numel));
}

// What Tensor(dtype, shape) checks before it allocates (tensor.cc: kMaxTensorBytes = 4 GiB).
void checkTensorConstructible(DataType dtype, const Shape& shape) {
  const uint64_t n = static_cast<uint64_t>(shapeNumel(shape));
  if (n > (4ull << 30) / dataTypeSize(dtype)) Tensor probe(dtype, shape);  // throws E_RESOURCE before allocating
}

// tensorFromProto for inspectModel: the same checks in the same order, for a tensor whose
// payload fields were left out by stripModel (`stripped`, counts of what they held) or whose
// data is external. The result has dtype and shape; its bytes are left empty (*deferred = true)
// when the payload was left out or the external data is over keepBytes (then only verified).
Tensor tensorMetaFromProto(const onnx::TensorProto& p, const StrippedTensor* stripped, const std::string& modelDir,
                           const ImportOptions& options, uint64_t keepBytes, bool* deferred) {
  const std::string label = tensorLabel(p);
  TensorHeader h = tensorHeader(p, options);
  Tensor t;
  t.dtype = h.dtype;
  t.shape = h.shape;
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    *deferred = h.nbytes > keepBytes;
    t.bytes = readExternal(p, modelDir, h.nbytes, !*deferred);
    return t;
  }
  if (!stripped) throw BuildError(ErrorCode::kInternal, label + ": no payload record");
  if (stripped->hasRawData) {
    if (stripped->rawDataBytes != h.nbytes) rawSizeMismatch(label, stripped->rawDataBytes, h.shape, h.nbytes);
    *deferred = true;
    return t;
  }
  int64_t count = typedCount(h.dtype, StrippedCounts{*stripped});
  if (static_cast<uint64_t>(count) != h.numel) countMismatch(label, count, h.shape, h.numel);
  checkTensorConstructible(h.dtype, h.shape);
  *deferred = true;
  return t;
}

}  // namespace

Tensor tensorFromProto(const onnx::TensorProto& p, const std::string& modelDir, const ImportOptions& options) {
  const std::string label = tensorLabel(p);
  const TensorHeader h = tensorHeader(p, options);
  const DataType dtype = h.dtype;
  const Shape& shape = h.shape;
  const uint64_t numel = h.numel;
  const uint64_t nbytes = h.nbytes;

  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    Tensor t;  // not Tensor(dtype, shape): that would zero-fill bytes about to be replaced
    t.dtype = dtype;
    t.shape = shape;
    t.bytes = readExternal(p, modelDir, nbytes);
    return t;
  }
  if (p.has_raw_data()) {
    if (p.raw_data().size() != nbytes) rawSizeMismatch(label, p.raw_data().size(), shape, nbytes);
    Tensor t;
    t.dtype = dtype;
    t.shape = shape;
    const uint8_t* raw = reinterpret_cast<const uint8_t*>(p.raw_data().data());
    t.bytes.assign(raw, raw + nbytes);
    return t;
  }
  // Typed fields.
  int64_t count = typedCount(dtype, ProtoCounts{p});
  if (static_cast<uint64_t>(count) != numel) countMismatch(label, count, shape, numel);
  Tensor t(dtype, shape);
  switch (dtype) {
    case DataType::kFloat: copyConverted<decltype(p.float_data()), float>(p.float_data(), t); break;
    case DataType::kDouble: copyConverted<decltype(p.double_data()), double>(p.double_data(), t); break;
    case DataType::kInt64: copyConverted<decltype(p.int64_data()), int64_t>(p.int64_data(), t); break;
    case DataType::kUint32: copyConverted<decltype(p.uint64_data()), uint32_t>(p.uint64_data(), t); break;
    case DataType::kUint64: copyConverted<decltype(p.uint64_data()), uint64_t>(p.uint64_data(), t); break;
    case DataType::kInt32: copyConverted<decltype(p.int32_data()), int32_t>(p.int32_data(), t); break;
    case DataType::kInt16: copyConverted<decltype(p.int32_data()), int16_t>(p.int32_data(), t); break;
    case DataType::kInt8: copyConverted<decltype(p.int32_data()), int8_t>(p.int32_data(), t); break;
    case DataType::kUint16: case DataType::kFloat16: case DataType::kBFloat16:
      copyConverted<decltype(p.int32_data()), uint16_t>(p.int32_data(), t); break;  // 16-bit patterns
    case DataType::kUint8: copyConverted<decltype(p.int32_data()), uint8_t>(p.int32_data(), t); break;
    case DataType::kBool: {
      uint8_t* d = t.data<uint8_t>();
      for (int i = 0; i < p.int32_data_size(); ++i) d[i] = p.int32_data(i) ? 1 : 0;
      break;
    }
    default: break;
  }
  return t;
}

namespace {

// protobuf reports some parse problems (size limits, recursion depth) only through its log:
// capture them for the error message on the parsing thread, keep the default output otherwise.
thread_local std::string* protobufLogSink = nullptr;

void protobufLogHandler(google::protobuf::LogLevel level, const char* file, int line, const std::string& message) {
  if (protobufLogSink) {
    if (!protobufLogSink->empty()) *protobufLogSink += "; ";
    *protobufLogSink += message;
    return;
  }
  static const char* names[] = {"INFO", "WARNING", "ERROR", "FATAL"};
  std::fprintf(stderr, "[libprotobuf %s %s:%d] %s\n", names[std::min(std::max<int>(level, 0), 3)], file, line, message.c_str());
}

[[noreturn]] void parseFailure(const std::string& what, size_t consumed, size_t total, const std::string& reason) {
  throw BuildError(ErrorCode::kParse, what + ": protobuf parsing stopped at byte " + std::to_string(consumed) + " of " +
                                          std::to_string(total) + " (" +
                                          (reason.empty() ? "the data is truncated, corrupted or not a protobuf message" : reason) + ")");
}

// sourceSize: the size of the input `bytes` stand for (inspectModel parses a stripped copy of a
// larger file): a parse that consumed everything is reported at the end of the source.
template <typename Message>
void parseMessage(Message& msg, const std::string& bytes, uint64_t limit, const std::string& what, uint64_t sourceSize = UINT64_MAX) {
  static const bool handlerInstalled = [] {
    google::protobuf::SetLogHandler(protobufLogHandler);
    return true;
  }();
  (void)handlerInstalled;
  std::string reason;
  protobufLogSink = &reason;
  google::protobuf::io::ArrayInputStream raw(bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX)));
  google::protobuf::io::CodedInputStream cis(&raw);
  cis.SetTotalBytesLimit(static_cast<int>(std::min<uint64_t>(limit, INT_MAX)));
  bool ok = msg.ParseFromCodedStream(&cis);
  protobufLogSink = nullptr;
  if (!ok || !cis.ConsumedEntireMessage()) {
    size_t consumed = static_cast<size_t>(cis.CurrentPosition());
    if (sourceSize == UINT64_MAX) parseFailure(what, consumed, bytes.size(), reason);
    parseFailure(what, consumed == bytes.size() ? static_cast<size_t>(sourceSize) : consumed, static_cast<size_t>(sourceSize), reason);
  }
}

// ---------- model conversion ----------

ValueType typeFromProto(const onnx::TypeProto& tp) {
  ValueType t;
  if (!tp.has_tensor_type()) return t;
  const auto& tt = tp.tensor_type();
  t.dtype = static_cast<DataType>(tt.elem_type());
  if (!tt.has_shape()) return t;
  t.hasShape = true;
  for (const auto& d : tt.shape().dim()) {
    if (d.has_dim_value() && d.dim_value() >= 0) {
      t.dims.push_back(d.dim_value());
      t.dimParams.push_back("");
    } else {
      t.dims.push_back(-1);
      t.dimParams.push_back(d.has_dim_param() ? d.dim_param() : "");
    }
  }
  return t;
}

// inspectModel: the stripped model and its source, for tensors whose payload was left out.
struct InspectContext {
  const StrippedModel& stripped;
  const ByteSource& source;
  uint64_t keepBytes;
};

// Bytes a tensor holds once loaded (a deferred tensor has none yet).
uint64_t logicalBytes(const Tensor& t) { return static_cast<uint64_t>(shapeNumel(t.shape)) * dataTypeSize(t.dtype); }

using TensorProtoPtr = std::shared_ptr<onnx::TensorProto>;

struct Importer {
  const ImportOptions& options;
  std::string modelDir;
  uint64_t totalBytes = 0;
  const InspectContext* inspect = nullptr;
  // inspectModel: tensors converted without their bytes, and the (stripped) TensorProto that loads them.
  std::map<std::string, TensorProtoPtr> deferredInitializers;
  std::map<std::shared_ptr<Tensor>, TensorProtoPtr> deferredAttributes;

  void account(const Tensor& t, const std::string& what) { account(t.bytes.size(), what); }
  void account(uint64_t bytes, const std::string& what) {
    totalBytes += bytes;
    if (totalBytes > options.maxTotalBytes)
      throw BuildError(ErrorCode::kResource, "constant tensors exceed the total limit of " + std::to_string(options.maxTotalBytes) +
                                                 " bytes (at " + what + ")");
  }

  void checkCancelled() const {
    if (options.cancel && options.cancel->load()) throw BuildError(ErrorCode::kCancelled, "build cancelled");
  }

  Tensor tensor(const onnx::TensorProto& p) {
    checkCancelled();
    Tensor t = load(p);
    account(t, tensorLabel(p));
    return t;
  }

  // tensorFromProto of the tensor as the file holds it: a stripped TensorProto is parsed again
  // from its bytes in the source, payload included.
  Tensor load(const onnx::TensorProto& p) const {
    if (inspect) {
      std::vector<size_t> markers = inspect->stripped.markersOf(p);
      if (!markers.empty()) {
        onnx::TensorProto whole;
        for (size_t m : markers) {
          const StrippedTensor& st = inspect->stripped.tensors[m];
          std::string bytes(static_cast<size_t>(st.length), '\0');
          if (st.length) inspect->source.read(st.offset, &bytes[0], bytes.size());
          if (!whole.MergeFromString(bytes))
            throw BuildError(ErrorCode::kInternal, tensorLabel(p) + ": cannot parse the tensor again from the model file");
        }
        return tensorFromProto(whole, modelDir, options);
      }
    }
    return tensorFromProto(p, modelDir, options);
  }

  // Like tensor(), but under inspectModel a tensor whose payload was left out (or whose external
  // data is large) comes back without bytes and *deferred is set; load() gets its values.
  Tensor tensorOrDeferred(const onnx::TensorProto& p, bool* deferred) {
    *deferred = false;
    if (!inspect) return tensor(p);
    std::vector<size_t> markers = inspect->stripped.markersOf(p);
    if (markers.size() > 1 || (markers.empty() && p.data_location() != onnx::TensorProto::EXTERNAL)) return tensor(p);
    checkCancelled();
    Tensor t = tensorMetaFromProto(p, markers.empty() ? nullptr : &inspect->stripped.tensors[markers[0]], modelDir, options,
                                   inspect->keepBytes, deferred);
    account(*deferred ? logicalBytes(t) : t.bytes.size(), tensorLabel(p));
    return t;
  }

  Attribute attribute(const onnx::AttributeProto& a, const std::string& nodeLabel, bool mayDefer = false) {
    Attribute out;
    int type = a.type();
    if (type == onnx::AttributeProto::UNDEFINED) {  // IR < 2 models do not set type: deduce it
      if (a.has_f()) type = onnx::AttributeProto::FLOAT;
      else if (a.has_i()) type = onnx::AttributeProto::INT;
      else if (a.has_s()) type = onnx::AttributeProto::STRING;
      else if (a.has_t()) type = onnx::AttributeProto::TENSOR;
      else if (a.has_g()) type = onnx::AttributeProto::GRAPH;
      else if (a.floats_size()) type = onnx::AttributeProto::FLOATS;
      else if (a.ints_size()) type = onnx::AttributeProto::INTS;
      else if (a.strings_size()) type = onnx::AttributeProto::STRINGS;
      else type = onnx::AttributeProto::INTS;  // an empty list
    }
    switch (type) {
      case onnx::AttributeProto::FLOAT: out.kind = Attribute::Kind::kFloat; out.f = a.f(); break;
      case onnx::AttributeProto::INT: out.kind = Attribute::Kind::kInt; out.i = a.i(); break;
      case onnx::AttributeProto::STRING: out.kind = Attribute::Kind::kString; out.s = a.s(); break;
      case onnx::AttributeProto::TENSOR: {
        out.kind = Attribute::Kind::kTensor;
        bool deferred = false;
        out.t = std::make_shared<Tensor>(mayDefer ? tensorOrDeferred(a.t(), &deferred) : tensor(a.t()));
        if (deferred) deferredAttributes[out.t] = std::make_shared<onnx::TensorProto>(a.t());
        break;
      }
      case onnx::AttributeProto::FLOATS:
        out.kind = Attribute::Kind::kFloats;
        out.floats.assign(a.floats().begin(), a.floats().end());
        break;
      case onnx::AttributeProto::INTS:
        out.kind = Attribute::Kind::kInts;
        out.ints.assign(a.ints().begin(), a.ints().end());
        break;
      case onnx::AttributeProto::STRINGS:
        out.kind = Attribute::Kind::kStrings;
        out.strings.assign(a.strings().begin(), a.strings().end());
        break;
      case onnx::AttributeProto::GRAPH:
        // Subgraphs are kept as a marker only: ops with subgraphs (If, Loop, Scan) have no kernels.
        out.kind = Attribute::Kind::kGraph;
        break;
      default:
        throw BuildError(ErrorCode::kUnsupportedOp, nodeLabel + ": attribute '" + a.name() + "' has unsupported type " + std::to_string(type));
    }
    return out;
  }
};

// Constant node -> its value tensor.
Tensor constantValue(const Node& n) {
  const auto& attrs = n.attrs.values;
  for (const auto& kv : attrs) {
    const Attribute& a = kv.second;
    if (kv.first == "value" && a.kind == Attribute::Kind::kTensor && a.t) return *a.t;
    if (kv.first == "value_float") { Tensor t(DataType::kFloat, {}); *t.data<float>() = a.f; return t; }
    if (kv.first == "value_int") { Tensor t(DataType::kInt64, {}); *t.data<int64_t>() = a.i; return t; }
    if (kv.first == "value_floats") {
      Tensor t(DataType::kFloat, {static_cast<int64_t>(a.floats.size())});
      std::copy(a.floats.begin(), a.floats.end(), t.data<float>());
      return t;
    }
    if (kv.first == "value_ints") {
      Tensor t(DataType::kInt64, {static_cast<int64_t>(a.ints.size())});
      std::copy(a.ints.begin(), a.ints.end(), t.data<int64_t>());
      return t;
    }
  }
  std::string kinds;
  for (const auto& kv : attrs) kinds += (kinds.empty() ? "" : ", ") + kv.first;
  throw BuildError(ErrorCode::kUnsupportedOp, "Constant node '" + n.name + "' has an unsupported value attribute (" +
                                                  (kinds.empty() ? "none" : kinds) + ")");
}

bool isLegacyBroadcastOp(const std::string& op) {
  static const std::set<std::string> ops = {"Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less"};
  return ops.count(op) != 0;
}

// opset < 7: B is broadcast onto A starting at `axis` (suffix-aligned when absent). Rewrite so
// numpy-style broadcasting gives the same result: B gets trailing 1-dims.
void normalizeLegacyBroadcast(Graph& g, size_t index) {
  Node& n = g.nodes[index];
  if (!n.attrs.has("broadcast") && !n.attrs.has("axis")) return;
  const bool broadcast = n.attrs.getInt("broadcast", 0) != 0;
  const bool hasAxis = n.attrs.has("axis");
  const int64_t axisAttr = n.attrs.getInt("axis", 0);
  n.attrs.values.erase("broadcast");
  n.attrs.values.erase("axis");
  if (!broadcast || !hasAxis || n.inputs.size() < 2) return;
  ValueInfo a = valueInfoOf(g, n.inputs[0]);
  ValueInfo b = valueInfoOf(g, n.inputs[1]);
  if (!a.hasShape || !b.hasShape)
    throw BuildError(ErrorCode::kShape, "node '" + n.name + "' (" + n.opType + "): legacy broadcast with axis needs known input ranks");
  const int64_t ra = static_cast<int64_t>(a.shape.size());
  const int64_t rb = static_cast<int64_t>(b.shape.size());
  const int64_t axis = axisAttr < 0 ? axisAttr + ra : axisAttr;
  if (axis < 0 || axis + rb > ra)
    throw BuildError(ErrorCode::kShape, "node '" + n.name + "' (" + n.opType + "): broadcast axis " + std::to_string(axisAttr) +
                                            " does not fit input ranks " + std::to_string(ra) + " and " + std::to_string(rb));
  const int64_t trailing = ra - axis - rb;
  if (trailing == 0) return;
  auto init = g.initializers.find(n.inputs[1]);
  if (init != g.initializers.end()) {
    Tensor t = init->second;
    t.shape.insert(t.shape.end(), static_cast<size_t>(trailing), 1);
    std::string name = g.uniqueValueName(n.inputs[1] + "_bcast");
    g.initializers[name] = std::move(t);
    g.types[name] = ValueType{g.initializers[name].dtype, true, g.initializers[name].shape,
                              std::vector<std::string>(g.initializers[name].shape.size())};
    n.inputs[1] = name;
    return;
  }
  // Non-constant B: insert an Unsqueeze (attribute form, valid at opset < 13).
  Node un;
  un.opType = "Unsqueeze";
  un.name = g.uniqueNodeName(n.name + "_bcast");
  un.originalNames = {n.name};
  un.inputs = {n.inputs[1]};
  un.outputs = {g.uniqueValueName(n.inputs[1] + "_bcast")};
  Attribute axes;
  axes.kind = Attribute::Kind::kInts;
  for (int64_t i = 0; i < trailing; ++i) axes.ints.push_back(rb + i);
  un.attrs.values["axes"] = axes;
  n.inputs[1] = un.outputs[0];
  g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(index), std::move(un));
  inferNodeShapes(g, index);
}

}  // namespace

namespace {

// Whether the import reads the value of node input k (not only its dtype and shape) when that
// input is a constant: ConstantOfShape's shape, and the inputs whose values shape inference of
// today's ops reads (native/src/core/ops: every `constValue` use). An op missing from both lists
// (added later) counts as reading every input, so inspectModel stays exact and only uses more memory.
bool readsInputValue(const Node& n, size_t k, bool infer) {
  if (n.domain.empty() && n.opType == "ConstantOfShape" && k == 0) return true;
  if (!infer) return false;
  static const std::map<std::string, std::vector<size_t>> kValueInputs = {
      {"ConstantOfShape", {0}}, {"Range", {0, 1, 2}}, {"Reshape", {1}}, {"Squeeze", {1}}, {"Unsqueeze", {1}},
      {"Expand", {1}}, {"Slice", {1, 2, 3, 4}}, {"Split", {1}}, {"Tile", {1}}, {"OneHot", {1}}, {"TopK", {1}},
      {"Pad", {1, 2, 3}}, {"Resize", {1, 2, 3}}, {"Upsample", {1}}, {"ReduceL1", {1}}, {"ReduceL2", {1}},
      {"ReduceLogSum", {1}}, {"ReduceLogSumExp", {1}}, {"ReduceMax", {1}}, {"ReduceMean", {1}}, {"ReduceMin", {1}},
      {"ReduceProd", {1}}, {"ReduceSum", {1}}, {"ReduceSumSquare", {1}}};
  static const std::set<std::string> kShapeOnly = {
      "Abs", "Acos", "Add", "And", "ArgMax", "ArgMin", "Asin", "Atan", "AveragePool", "BatchNormalization", "Cast",
      "CastLike", "Ceil", "Celu", "Clip", "Concat", "Conv", "ConvInteger", "ConvTranspose", "Cos", "Cosh", "CumSum",
      "DepthToSpace", "DequantizeLinear", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Flatten", "Floor",
      "FusedConv", "FusedGemm", "FusedMatMul", "Gather", "GatherElements", "GatherND", "Gelu", "Gemm",
      "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GroupNormalization",
      "HardSigmoid", "HardSwish", "Hardmax", "Identity", "InstanceNormalization", "IsInf", "IsNaN", "LRN",
      "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "LpNormalization", "LpPool",
      "MatMul", "MatMulInteger", "Max", "MaxPool", "Mean", "Min", "Mish", "Mod", "Mul", "Neg", "NonZero", "Not", "Or",
      "PRelu", "Pow", "QLinearConv", "QLinearMatMul", "QuantizeLinear", "Reciprocal", "Relu", "Round", "RoundToFp16",
      "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Softmax",
      "Softplus", "Softsign", "SpaceToDepth", "Sqrt", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Transpose",
      "Trilu", "Where", "Xor"};
  auto it = kValueInputs.find(n.opType);
  if (it != kValueInputs.end()) return std::find(it->second.begin(), it->second.end(), k) != it->second.end();
  return !kShapeOnly.count(n.opType);
}

void parseModel(onnx::ModelProto& model, const std::string& bytes, const ImportOptions& options) {
  if (bytes.size() > options.maxModelBytes)
    throw BuildError(ErrorCode::kResource, "model is " + std::to_string(bytes.size()) + " bytes, over the limit of " + std::to_string(options.maxModelBytes));
  if (bytes.empty()) throw BuildError(ErrorCode::kParse, "not an ONNX model: the file is empty");
  parseMessage(model, bytes, options.maxModelBytes, "not a valid ONNX model");
}

// Converts a parsed model. Initializer data is released from `model` as it is converted, so
// a large model is held about twice (proto + tensors) at the peak, not three times.
Graph convertModel(onnx::ModelProto& model, const std::string& modelDir, const ImportOptions& options, ImportReport* report,
                   const InspectContext* inspect = nullptr) {
  if (!model.has_graph()) throw BuildError(ErrorCode::kParse, "not an ONNX model: the ModelProto has no graph");
  if (model.ir_version() <= 0) throw BuildError(ErrorCode::kParse, "not an ONNX model: ir_version is missing");

  Graph g;
  g.irVersion = model.ir_version();
  g.producerName = model.producer_name();
  g.producerVersion = model.producer_version();
  g.opset = 1;  // ONNX: no opset_import means opset 1
  for (const auto& os : model.opset_import()) {
    std::string domain = os.domain() == "ai.onnx" ? "" : os.domain();
    g.opsetImports[domain] = os.version();
    if (domain.empty()) g.opset = static_cast<int>(os.version());
  }
  if (g.opset < kMinOpset || g.opset > kMaxOpset)
    throw BuildError(ErrorCode::kUnsupportedOp, "opset " + std::to_string(g.opset) + " of the default ONNX domain is not supported (supported: " +
                                                    std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) + ")");

  Importer imp{options, modelDir, 0, inspect, {}, {}};
  const onnx::GraphProto& gp = model.graph();
  g.name = gp.name();

  for (auto& init : *model.mutable_graph()->mutable_initializer()) {
    if (init.name().empty()) throw BuildError(ErrorCode::kInvalidModel, "an initializer has no name");
    if (g.initializers.count(init.name())) throw BuildError(ErrorCode::kInvalidModel, "initializer '" + init.name() + "' is defined twice");
    bool deferred = false;
    g.initializers.emplace(init.name(), imp.tensorOrDeferred(init, &deferred));
    if (deferred) imp.deferredInitializers[init.name()] = std::make_shared<onnx::TensorProto>(init);
    delete init.release_raw_data();  // frees the buffer (clear_raw_data would keep its capacity)
  }
  if (gp.sparse_initializer_size() > 0) throw BuildError(ErrorCode::kUnsupportedOp, "sparse initializers are not supported");

  std::set<std::string> seenInputs;
  for (const auto& in : gp.input()) {
    if (in.name().empty()) throw BuildError(ErrorCode::kInvalidModel, "a graph input has no name");
    if (!seenInputs.insert(in.name()).second) throw BuildError(ErrorCode::kInvalidModel, "graph input '" + in.name() + "' is declared twice");
    if (g.initializers.count(in.name())) continue;  // IR < 4: initializers are listed as inputs too
    ValueType t = typeFromProto(in.type());
    if (!in.type().has_tensor_type())
      throw BuildError(ErrorCode::kUnsupportedOp, "graph input '" + in.name() + "' is not a tensor (sequences, maps are not supported)");
    if (!supportedTensorType(static_cast<int32_t>(t.dtype)))
      throw BuildError(ErrorCode::kUnsupportedOp, "graph input '" + in.name() + "' has unsupported element type " + std::to_string(static_cast<int>(t.dtype)));
    g.inputs.push_back(in.name());
    g.types[in.name()] = t;
  }
  for (const auto& vi : gp.value_info()) {
    ValueType t = typeFromProto(vi.type());
    if (t.known()) g.types[vi.name()] = t;
  }
  std::set<std::string> seenOutputs;
  for (const auto& out : gp.output()) {
    if (out.name().empty()) throw BuildError(ErrorCode::kInvalidModel, "a graph output has no name");
    if (!seenOutputs.insert(out.name()).second) throw BuildError(ErrorCode::kInvalidModel, "graph output '" + out.name() + "' is declared twice");
    g.outputs.push_back(out.name());
    ValueType t = typeFromProto(out.type());
    if (t.known() && !g.types.count(out.name())) g.types[out.name()] = t;
  }
  if (g.outputs.empty()) throw BuildError(ErrorCode::kInvalidModel, "the graph has no outputs");

  // Nodes: unique names (plans address layers by name), attributes converted.
  std::set<std::string> names;
  for (const auto& np : gp.node()) {
    Node n;
    n.opType = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    std::string base = np.name().empty() ? n.opType + "_" + std::to_string(g.nodes.size()) : np.name();
    n.name = base;
    for (int i = 1; names.count(n.name); ++i) n.name = base + "_" + std::to_string(i);
    names.insert(n.name);
    n.originalNames = {n.name};
    if (n.opType.empty()) throw BuildError(ErrorCode::kInvalidModel, "node '" + n.name + "' has no op_type");
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    if (n.outputs.empty()) throw BuildError(ErrorCode::kInvalidModel, "node '" + n.name + "' (" + n.opType + ") has no outputs");
    const std::string label = "node '" + n.name + "' (" + n.opType + ")";
    for (const auto& a : np.attribute()) {
      if (a.name().empty()) throw BuildError(ErrorCode::kInvalidModel, label + " has an attribute without a name");
      if (!a.ref_attr_name().empty()) throw BuildError(ErrorCode::kUnsupportedOp, label + ": attribute references (functions) are not supported");
      // inspectModel: a Constant's value may stay unread (it becomes an initializer below).
      const bool mayDefer = n.opType == "Constant" && n.domain.empty() && a.name() == "value";
      n.attrs.values[a.name()] = imp.attribute(a, label, mayDefer);
    }
    g.nodes.push_back(std::move(n));
  }

  // Structure before anything else: undefined inputs, cycles, duplicate producers.
  g.topologicalSort();

  // Every unsupported op at once, so a team sees the full list in one build.
  // (Constant is handled here, not by a kernel.)
  std::string unsupported;
  {
    Graph probe;
    std::set<std::string> opTypes;
    for (const auto& n : g.nodes) {
      opTypes.insert(n.domain.empty() ? n.opType : n.domain + "::" + n.opType);
      if (!(n.opType == "Constant" && n.domain.empty())) probe.nodes.push_back(n);
    }
    unsupported = unsupportedOpsReport(probe);
    if (report) {
      report->nodeCount = static_cast<int64_t>(g.nodes.size());
      report->initializerCount = static_cast<int64_t>(g.initializers.size());
      report->opTypes.assign(opTypes.begin(), opTypes.end());
      report->unsupportedOps = unsupported;
    }
    if (!unsupported.empty() && options.requireSupportedOps)
      throw BuildError(ErrorCode::kUnsupportedOp, "unsupported ops: " + unsupported);
  }
  const bool infer = options.inferShapes && unsupported.empty();

  // Constants become initializers.
  for (size_t i = 0; i < g.nodes.size();) {
    Node& n = g.nodes[i];
    if (n.opType == "Constant" && n.domain.empty()) {
      if (n.outputs.size() != 1 || n.outputs[0].empty())
        throw BuildError(ErrorCode::kInvalidModel, "Constant node '" + n.name + "' must have exactly one output");
      Tensor t = constantValue(n);
      TensorProtoPtr deferred;  // constantValue returns the "value" tensor when there is one
      auto value = n.attrs.values.find("value");
      if (value != n.attrs.values.end() && value->second.kind == Attribute::Kind::kTensor && value->second.t) {
        auto it = imp.deferredAttributes.find(value->second.t);
        if (it != imp.deferredAttributes.end()) deferred = it->second;
      }
      imp.account(deferred ? logicalBytes(t) : t.bytes.size(), "Constant '" + n.name + "'");
      g.initializers[n.outputs[0]] = std::move(t);
      if (deferred) imp.deferredInitializers[n.outputs[0]] = deferred;
      else imp.deferredInitializers.erase(n.outputs[0]);
      g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    ++i;
  }
  // inspectModel: load the deferred constants whose values are read below (shape inference of
  // shape-like inputs, ConstantOfShape); weights stay unread.
  if (!imp.deferredInitializers.empty()) {
    for (const Node& n : g.nodes) {
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        auto it = imp.deferredInitializers.find(n.inputs[k]);
        if (it == imp.deferredInitializers.end() || !readsInputValue(n, k, infer)) continue;
        imp.checkCancelled();
        g.initializers[it->first] = imp.load(*it->second);
        imp.deferredInitializers.erase(it);
      }
    }
  }
  // ConstantOfShape with a constant shape: materialize (accounted against the total limit).
  for (size_t i = 0; i < g.nodes.size();) {
    Node& n = g.nodes[i];
    if (n.opType == "ConstantOfShape" && n.domain.empty() && n.inputs.size() == 1 && g.initializers.count(n.inputs[0])) {
      std::vector<int64_t> dims = g.initializers.at(n.inputs[0]).toInt64Vector();
      const Tensor* value = n.attrs.has("value") ? n.attrs.getTensor("value") : nullptr;
      DataType dt = value ? value->dtype : DataType::kFloat;
      uint64_t count = 1;
      for (int64_t d : dims) {
        if (d < 0) throw BuildError(ErrorCode::kInvalidModel, "ConstantOfShape node '" + n.name + "' has a negative dimension");
        if (d != 0 && count > (options.maxTensorBytes / dataTypeSize(dt)) / static_cast<uint64_t>(d))
          throw BuildError(ErrorCode::kResource, "ConstantOfShape node '" + n.name + "' would allocate more than " +
                                                     std::to_string(options.maxTensorBytes) + " bytes");
        count *= static_cast<uint64_t>(d);
      }
      Tensor t(dt, Shape(dims.begin(), dims.end()));
      if (value && value->bytes.size() == dataTypeSize(dt)) {
        for (size_t off = 0; off < t.bytes.size(); off += value->bytes.size())
          std::memcpy(t.bytes.data() + off, value->bytes.data(), value->bytes.size());
      }
      imp.account(t, "ConstantOfShape '" + n.name + "'");
      g.initializers[n.outputs[0]] = std::move(t);
      imp.deferredInitializers.erase(n.outputs[0]);
      g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    ++i;
  }
  for (const auto& kv : g.initializers) {
    const Tensor& t = kv.second;
    g.types[kv.first] = ValueType{t.dtype, true, t.shape, std::vector<std::string>(t.shape.size())};
  }

  // Legacy broadcast normalization needs input ranks, so it runs interleaved with inference.
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (i % 64 == 0) imp.checkCancelled();
    if (infer && g.opset < 7 && g.nodes[i].domain.empty() && isLegacyBroadcastOp(g.nodes[i].opType)) {
      size_t before = g.nodes.size();
      normalizeLegacyBroadcast(g, i);
      i += g.nodes.size() - before;  // skip an inserted Unsqueeze (already inferred)
    }
    if (infer) inferNodeShapes(g, i);
  }
  return g;
}

}  // namespace

Graph importModelBytes(const std::string& bytes, const std::string& modelDir, const ImportOptions& options, ImportReport* report) {
  onnx::ModelProto model;
  parseModel(model, bytes, options);
  return convertModel(model, modelDir, options, report);
}

Graph importModel(const std::string& path, const ImportOptions& options, ImportReport* report) {
  onnx::ModelProto model;
  {
    std::string bytes = readWholeFile(path, options.maxModelBytes, "model");
    parseModel(model, bytes, options);
  }  // the file bytes are freed before the tensors are built
  return convertModel(model, dirName(path), options, report);
}

namespace {

Graph inspectSource(const ByteSource& source, const std::string& modelDir, const ImportOptions& options, ImportReport* report,
                    uint64_t keepTensorBytes) {
  const uint64_t size = source.size();
  if (size > options.maxModelBytes)
    throw BuildError(ErrorCode::kResource, "model is " + std::to_string(size) + " bytes, over the limit of " + std::to_string(options.maxModelBytes));
  if (size == 0) throw BuildError(ErrorCode::kParse, "not an ONNX model: the file is empty");
  const std::string what = "not a valid ONNX model";
  StrippedModel stripped;
  try {
    stripped = stripModel(source, keepTensorBytes);
  } catch (const WireFormatError& e) {
    parseFailure(what, static_cast<size_t>(e.position), static_cast<size_t>(size), "");
  }
  onnx::ModelProto model;
  // The stripped copy may be a little longer than the file (markers on small tensors): the file
  // was within the limit, so is its copy.
  parseMessage(model, stripped.bytes, INT_MAX, what, size);
  if (stripped.stoppedAt != UINT64_MAX) parseFailure(what, static_cast<size_t>(stripped.stoppedAt), static_cast<size_t>(size), "");
  InspectContext inspect{stripped, source, keepTensorBytes};
  return convertModel(model, modelDir, options, report, &inspect);
}

}  // namespace

Graph inspectModel(const std::string& path, const ImportOptions& options, ImportReport* report, uint64_t keepTensorBytes) {
  std::unique_ptr<ByteSource> source = openFileByteSource(path, options.maxModelBytes, "model");
  return inspectSource(*source, dirName(path), options, report, keepTensorBytes);
}

Graph inspectModelBytes(const std::string& bytes, const std::string& modelDir, const ImportOptions& options, ImportReport* report,
                        uint64_t keepTensorBytes) {
  std::unique_ptr<ByteSource> source = memoryByteSource(bytes);
  return inspectSource(*source, modelDir, options, report, keepTensorBytes);
}

Tensor readTensorProtoFile(const std::string& path) {
  std::string bytes = readWholeFile(path, 4ull << 30, "tensor file");
  onnx::TensorProto p;
  parseMessage(p, bytes, 4ull << 30, "not a valid TensorProto file " + path);
  return tensorFromProto(p, dirName(path));
}

std::string sha256File(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw BuildError(ErrorCode::kIo, "cannot read " + path);
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (f.gcount() > 0) h.update(buf.data(), static_cast<size_t>(f.gcount()));
  }
  return h.hexDigest();
}

}  // namespace planforge
