// Core value types shared by the importer, the passes, the CPU reference executor
// and the plan format. No node-addon-api and no protobuf types in here.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace planforge {

// Values follow ONNX TensorProto.DataType so conversion is a cast.
enum class DataType : int32_t {
  kUndefined = 0, kFloat = 1, kUint8 = 2, kInt8 = 3, kUint16 = 4, kInt16 = 5, kInt32 = 6, kInt64 = 7,
  kString = 8, kBool = 9, kFloat16 = 10, kDouble = 11, kUint32 = 12, kUint64 = 13, kBFloat16 = 16,
};
size_t dataTypeSize(DataType t);       // bytes per element; throws for kString/kUndefined
const char* dataTypeName(DataType t);  // "float32", "int64", ...

using Shape = std::vector<int64_t>;
int64_t shapeNumel(const Shape& s);
std::string shapeToString(const Shape& s);  // "1x3x224x224"

// A dense, row-major tensor that owns its bytes.
struct Tensor {
  DataType dtype = DataType::kFloat;
  Shape shape;
  std::vector<uint8_t> bytes;

  Tensor() = default;
  Tensor(DataType t, Shape s);  // zero-filled; throws E_RESOURCE on absurd sizes
  int64_t numel() const { return shapeNumel(shape); }
  template <typename T> T* data() { return reinterpret_cast<T*>(bytes.data()); }
  template <typename T> const T* data() const { return reinterpret_cast<const T*>(bytes.data()); }
  // Element i converted to double / int64 whatever the dtype (for shape tensors, scalars).
  double getDouble(int64_t i) const;
  int64_t getInt64(int64_t i) const;
  std::vector<int64_t> toInt64Vector() const;
};

// Error codes mirror the JS BuildError codes.
enum class ErrorCode {
  kParse,           // E_PARSE: not a ModelProto / malformed graph
  kUnsupportedOp,   // E_UNSUPPORTED_OP
  kProfile,         // E_PROFILE: bad optimization profile / shape outside profile
  kInvalidModel,    // E_INVALID_MODEL: structurally valid protobuf, semantically broken (cycles, missing inputs)
  kExternalData,    // E_EXTERNAL_DATA: external data path absolute / escaping / missing
  kShape,           // E_SHAPE: shape inference failure
  kResource,        // E_RESOURCE: allocation bomb, limits exceeded
  kPlanFormat,      // E_PLAN_FORMAT: truncated / corrupted plan
  kWrongSm,         // E_WRONG_SM: plan built for another SM
  kCalibration,     // E_CALIBRATION
  kIo,              // E_IO
  kCancelled,       // E_CANCELLED
  kInternal,        // E_INTERNAL
  kNoGpu,           // E_NO_GPU: no CUDA driver / no device (GPU execution only)
};
const char* errorCodeName(ErrorCode c);  // "E_PARSE", ...

class BuildError : public std::runtime_error {
 public:
  BuildError(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const { return code_; }
 private:
  ErrorCode code_;
};

// ONNX node attribute, decoupled from protobuf.
struct Attribute {
  enum class Kind { kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings, kGraph } kind = Kind::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  std::shared_ptr<Tensor> t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
};

class Attributes {
 public:
  std::map<std::string, Attribute> values;
  bool has(const std::string& n) const { return values.count(n) != 0; }
  int64_t getInt(const std::string& n, int64_t dflt) const;
  float getFloat(const std::string& n, float dflt) const;
  std::string getString(const std::string& n, const std::string& dflt) const;
  std::vector<int64_t> getInts(const std::string& n, const std::vector<int64_t>& dflt = {}) const;
  std::vector<float> getFloats(const std::string& n, const std::vector<float>& dflt = {}) const;
  const Tensor* getTensor(const std::string& n) const;  // nullptr when absent
};

}  // namespace planforge
