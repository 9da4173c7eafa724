#include "tensor.h"

#include <cstring>
#include <limits>
#include <sstream>

#include "half.h"

namespace planforge {

namespace {
// No single tensor may exceed this; guards kernels (Expand, Tile, ConstantOfShape...)
// against shapes that would allocate absurd amounts of memory.
constexpr uint64_t kMaxTensorBytes = 4ull << 30;
}  // namespace

size_t dataTypeSize(DataType t) {
  switch (t) {
    case DataType::kFloat: return 4;
    case DataType::kUint8: return 1;
    case DataType::kInt8: return 1;
    case DataType::kUint16: return 2;
    case DataType::kInt16: return 2;
    case DataType::kInt32: return 4;
    case DataType::kInt64: return 8;
    case DataType::kBool: return 1;
    case DataType::kFloat16: return 2;
    case DataType::kDouble: return 8;
    case DataType::kUint32: return 4;
    case DataType::kUint64: return 8;
    case DataType::kBFloat16: return 2;
    case DataType::kString:
    case DataType::kUndefined:
      break;
  }
  throw BuildError(ErrorCode::kUnsupportedOp,
                   std::string("tensors of type ") + dataTypeName(t) + " are not supported");
}

const char* dataTypeName(DataType t) {
  switch (t) {
    case DataType::kUndefined: return "undefined";
    case DataType::kFloat: return "float32";
    case DataType::kUint8: return "uint8";
    case DataType::kInt8: return "int8";
    case DataType::kUint16: return "uint16";
    case DataType::kInt16: return "int16";
    case DataType::kInt32: return "int32";
    case DataType::kInt64: return "int64";
    case DataType::kString: return "string";
    case DataType::kBool: return "bool";
    case DataType::kFloat16: return "float16";
    case DataType::kDouble: return "float64";
    case DataType::kUint32: return "uint32";
    case DataType::kUint64: return "uint64";
    case DataType::kBFloat16: return "bfloat16";
  }
  return "unknown";
}

int64_t shapeNumel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw BuildError(ErrorCode::kShape, "shape " + shapeToString(s) + " has a negative or unknown dimension");
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw BuildError(ErrorCode::kResource, "shape " + shapeToString(s) + " has more elements than can be addressed");
    n *= d;
  }
  return n;
}

std::string shapeToString(const Shape& s) {
  if (s.empty()) return "scalar";
  std::ostringstream os;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) os << 'x';
    if (s[i] < 0) os << '?';
    else os << s[i];
  }
  return os.str();
}

Tensor::Tensor(DataType t, Shape s) : dtype(t), shape(std::move(s)) {
  int64_t n = shapeNumel(shape);
  size_t elem = dataTypeSize(t);
  if (static_cast<uint64_t>(n) > kMaxTensorBytes / elem)
    throw BuildError(ErrorCode::kResource, "tensor of shape " + shapeToString(shape) + " (" + dataTypeName(t) +
                                               ") exceeds the " + std::to_string(kMaxTensorBytes >> 30) + " GiB per-tensor limit");
  bytes.assign(static_cast<size_t>(n) * elem, 0);
}

namespace {
template <typename T>
T loadAs(const std::vector<uint8_t>& bytes, int64_t i) {
  T v;
  std::memcpy(&v, bytes.data() + static_cast<size_t>(i) * sizeof(T), sizeof(T));
  return v;
}

void checkIndex(const Tensor& t, int64_t i) {
  size_t elem = dataTypeSize(t.dtype);
  if (i < 0 || static_cast<uint64_t>(i) >= t.bytes.size() / elem)
    throw BuildError(ErrorCode::kInternal, "tensor element index " + std::to_string(i) + " out of range for shape " +
                                               shapeToString(t.shape));
}
}  // namespace

double Tensor::getDouble(int64_t i) const {
  checkIndex(*this, i);
  switch (dtype) {
    case DataType::kFloat: return loadAs<float>(bytes, i);
    case DataType::kDouble: return loadAs<double>(bytes, i);
    case DataType::kFloat16: return halfToFloat(loadAs<uint16_t>(bytes, i));
    case DataType::kBFloat16: return bfloat16ToFloat(loadAs<uint16_t>(bytes, i));
    case DataType::kUint8: return loadAs<uint8_t>(bytes, i);
    case DataType::kInt8: return loadAs<int8_t>(bytes, i);
    case DataType::kUint16: return loadAs<uint16_t>(bytes, i);
    case DataType::kInt16: return loadAs<int16_t>(bytes, i);
    case DataType::kInt32: return loadAs<int32_t>(bytes, i);
    case DataType::kInt64: return static_cast<double>(loadAs<int64_t>(bytes, i));
    case DataType::kUint32: return loadAs<uint32_t>(bytes, i);
    case DataType::kUint64: return static_cast<double>(loadAs<uint64_t>(bytes, i));
    case DataType::kBool: return loadAs<uint8_t>(bytes, i) ? 1.0 : 0.0;
    default: break;
  }
  throw BuildError(ErrorCode::kInternal, std::string("cannot read ") + dataTypeName(dtype) + " elements as numbers");
}

int64_t Tensor::getInt64(int64_t i) const {
  checkIndex(*this, i);
  switch (dtype) {
    case DataType::kInt64: return loadAs<int64_t>(bytes, i);
    case DataType::kInt32: return loadAs<int32_t>(bytes, i);
    case DataType::kInt16: return loadAs<int16_t>(bytes, i);
    case DataType::kInt8: return loadAs<int8_t>(bytes, i);
    case DataType::kUint8: return loadAs<uint8_t>(bytes, i);
    case DataType::kUint16: return loadAs<uint16_t>(bytes, i);
    case DataType::kUint32: return loadAs<uint32_t>(bytes, i);
    case DataType::kUint64: return static_cast<int64_t>(loadAs<uint64_t>(bytes, i));
    case DataType::kBool: return loadAs<uint8_t>(bytes, i) ? 1 : 0;
    default: {
      double d = getDouble(i);
      if (!(d >= -9.2e18 && d <= 9.2e18)) return d < 0 ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
      return static_cast<int64_t>(d);
    }
  }
}

std::vector<int64_t> Tensor::toInt64Vector() const {
  int64_t n = static_cast<int64_t>(bytes.size() / dataTypeSize(dtype));
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = getInt64(i);
  return out;
}

const char* errorCodeName(ErrorCode c) {
  switch (c) {
    case ErrorCode::kParse: return "E_PARSE";
    case ErrorCode::kUnsupportedOp: return "E_UNSUPPORTED_OP";
    case ErrorCode::kProfile: return "E_PROFILE";
    case ErrorCode::kInvalidModel: return "E_INVALID_MODEL";
    case ErrorCode::kExternalData: return "E_EXTERNAL_DATA";
    case ErrorCode::kShape: return "E_SHAPE";
    case ErrorCode::kResource: return "E_RESOURCE";
    case ErrorCode::kPlanFormat: return "E_PLAN_FORMAT";
    case ErrorCode::kWrongSm: return "E_WRONG_SM";
    case ErrorCode::kCalibration: return "E_CALIBRATION";
    case ErrorCode::kIo: return "E_IO";
    case ErrorCode::kCancelled: return "E_CANCELLED";
    case ErrorCode::kInternal: return "E_INTERNAL";
    case ErrorCode::kNoGpu: return "E_NO_GPU";
  }
  return "E_INTERNAL";
}

// ---- Attributes ----

namespace {
const Attribute* findAttr(const Attributes& a, const std::string& n) {
  auto it = a.values.find(n);
  return it == a.values.end() ? nullptr : &it->second;
}
[[noreturn]] void wrongKind(const std::string& n, const char* want) {
  throw BuildError(ErrorCode::kInvalidModel, "attribute '" + n + "' is not " + want);
}
}  // namespace

int64_t Attributes::getInt(const std::string& n, int64_t dflt) const {
  const Attribute* a = findAttr(*this, n);
  if (!a) return dflt;
  if (a->kind == Attribute::Kind::kInt) return a->i;
  if (a->kind == Attribute::Kind::kFloat) return static_cast<int64_t>(a->f);
  wrongKind(n, "an integer");
}

float Attributes::getFloat(const std::string& n, float dflt) const {
  const Attribute* a = findAttr(*this, n);
  if (!a) return dflt;
  if (a->kind == Attribute::Kind::kFloat) return a->f;
  if (a->kind == Attribute::Kind::kInt) return static_cast<float>(a->i);
  wrongKind(n, "a float");
}

std::string Attributes::getString(const std::string& n, const std::string& dflt) const {
  const Attribute* a = findAttr(*this, n);
  if (!a) return dflt;
  if (a->kind == Attribute::Kind::kString) return a->s;
  wrongKind(n, "a string");
}

std::vector<int64_t> Attributes::getInts(const std::string& n, const std::vector<int64_t>& dflt) const {
  const Attribute* a = findAttr(*this, n);
  if (!a) return dflt;
  if (a->kind == Attribute::Kind::kInts) return a->ints;
  if (a->kind == Attribute::Kind::kInt) return {a->i};
  wrongKind(n, "a list of integers");
}

std::vector<float> Attributes::getFloats(const std::string& n, const std::vector<float>& dflt) const {
  const Attribute* a = findAttr(*this, n);
  if (!a) return dflt;
  if (a->kind == Attribute::Kind::kFloats) return a->floats;
  if (a->kind == Attribute::Kind::kFloat) return {a->f};
  wrongKind(n, "a list of floats");
}

const Tensor* Attributes::getTensor(const std::string& n) const {
  const Attribute* a = findAttr(*this, n);
  if (!a) return nullptr;
  if (a->kind != Attribute::Kind::kTensor || !a->t) wrongKind(n, "a tensor");
  return a->t.get();
}

}  // namespace planforge
