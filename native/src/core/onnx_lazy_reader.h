// Streaming protobuf wire-format walker for ONNX models: produces a copy of the ModelProto
// bytes in which the payload fields of large TensorProtos (raw_data, float_data, int32_data,
// string_data, int64_data, double_data, uint64_data) are left out, so a model whose size is in
// its initializers can be checked in bounded memory. Everything else is copied byte for byte
// and parsed by protobuf afterwards, so the parse keeps protobuf's exact semantics (defaults,
// unknown fields, merges, recursion limit). Used by inspectModel (onnx_import.h), i.e. by
// checkModel; never by builds.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace onnx {
class TensorProto;
}

namespace planforge {

// Random-access bytes: a file (read on demand through pread) or a buffer in memory.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Copies n bytes at offset (offset + n <= size()). Throws BuildError(kIo) on a read error.
  virtual void read(uint64_t offset, void* dst, size_t n) const = 0;
};
// Opens a regular file; `what` ("model") and the limit phrase the errors exactly as the whole-file
// reader of onnx_import.cc does (E_IO: missing / not regular / unreadable; E_RESOURCE: over `limit`).
std::unique_ptr<ByteSource> openFileByteSource(const std::string& path, uint64_t limit, const char* what);
// Borrows `bytes`, which must outlive the source.
std::unique_ptr<ByteSource> memoryByteSource(const std::string& bytes);

// A TensorProto whose payload was left out: where it is in the source and what protobuf would
// have made of the payload fields.
struct StrippedTensor {
  uint64_t offset = 0;  // first byte of the TensorProto's own bytes (after its tag and length)
  uint64_t length = 0;
  bool hasRawData = false;   // a raw_data field was present (even empty)
  uint64_t rawDataBytes = 0; // size of the last raw_data field (protobuf keeps the last one)
  // Element counts of the repeated numeric fields (packed and unpacked occurrences together).
  uint64_t floatCount = 0, int32Count = 0, int64Count = 0, doubleCount = 0, uint64Count = 0;
};

struct StrippedModel {
  std::string bytes;                   // the ModelProto, large tensor payloads left out
  std::vector<StrippedTensor> tensors; // one per TensorProto that was walked (marker index)
  std::string markerKey;               // random per walk: a marker in the input itself never matches
  // Where a zero or end-group tag ended the top-level message before the end of the source
  // (protobuf reports that position unless it rejects the bytes before it); UINT64_MAX if none.
  uint64_t stoppedAt = UINT64_MAX;
  // Indices into `tensors` of the markers a TensorProto parsed from `bytes` carries (in order);
  // empty when the tensor was copied whole.
  std::vector<size_t> markersOf(const onnx::TensorProto& p) const;
};

// Where the walk found bytes protobuf rejects for certain (truncation, a field running past
// its message, a malformed varint, wire type 6/7, tag 0 ...): `position` is the offset
// protobuf's own parser would report for the same input.
struct WireFormatError {
  uint64_t position;
};

// What the stripped copy may hold at most (everything but large tensor payloads); past it
// stripModel throws BuildError(kResource).
constexpr uint64_t kMaxStrippedModelBytes = 128ull << 20;

// Field number of the marker (an unknown field of TensorProto) appended to each walked tensor.
constexpr uint32_t kStrippedTensorMarkerField = 536870901;

// Walks the ModelProto in `src`: TensorProtos (in the graph, nodes' attributes, subgraphs,
// functions, training info) longer than `keepTensorBytes` lose their payload fields and get a
// marker; all other bytes are copied. Throws WireFormatError.
StrippedModel stripModel(const ByteSource& src, uint64_t keepTensorBytes);

}  // namespace planforge
