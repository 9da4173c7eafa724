#include "npy.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace planforge {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw BuildError(ErrorCode::kParse, "invalid .npy: " + msg); }

struct DescrMap {
  const char* descr;
  DataType dtype;
};
// Little-endian (or byte-order-free) descriptors only.
const DescrMap kDescrs[] = {
    {"<f4", DataType::kFloat},  {"<f2", DataType::kFloat16}, {"<f8", DataType::kDouble}, {"<i8", DataType::kInt64},
    {"<i4", DataType::kInt32},  {"<i2", DataType::kInt16},   {"|i1", DataType::kInt8},   {"|u1", DataType::kUint8},
    {"|b1", DataType::kBool},   {"<u2", DataType::kUint16},  {"<u4", DataType::kUint32}, {"<u8", DataType::kUint64},
};

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\n");
  size_t b = s.find_last_not_of(" \t\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// Value text of key in the header dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".
std::string dictValue(const std::string& header, const std::string& key) {
  std::string pat = "'" + key + "'";
  size_t k = header.find(pat);
  if (k == std::string::npos) bad("header has no '" + key + "'");
  size_t colon = header.find(':', k + pat.size());
  if (colon == std::string::npos) bad("malformed header");
  size_t start = colon + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  if (start >= header.size()) bad("malformed header");
  size_t end;
  if (header[start] == '(') {
    end = header.find(')', start);
    if (end == std::string::npos) bad("malformed shape");
    return header.substr(start, end - start + 1);
  }
  if (header[start] == '\'') {
    end = header.find('\'', start + 1);
    if (end == std::string::npos) bad("malformed string");
    return header.substr(start + 1, end - start - 1);
  }
  end = header.find_first_of(",}", start);
  if (end == std::string::npos) bad("malformed header");
  return trim(header.substr(start, end - start));
}

}  // namespace

Tensor parseNpy(const uint8_t* data, size_t size) {
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10 || std::memcmp(data, magic, 6) != 0) bad("missing \\x93NUMPY magic");
  uint8_t major = data[6];
  size_t headerLen, offset;
  if (major == 1) {
    headerLen = data[8] | (size_t(data[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) bad("truncated header");
    headerLen = data[8] | (size_t(data[9]) << 8) | (size_t(data[10]) << 16) | (size_t(data[11]) << 24);
    offset = 12;
  } else {
    bad("unsupported format version " + std::to_string(major));
  }
  if (headerLen > size - offset) bad("truncated header");
  std::string header(reinterpret_cast<const char*>(data + offset), headerLen);
  offset += headerLen;

  std::string descr = dictValue(header, "descr");
  if (descr.size() == 3 && descr[0] == '=') descr[0] = '<';
  if (descr == "<i1" || descr == "<u1" || descr == "<b1") descr[0] = '|';
  DataType dtype = DataType::kUndefined;
  for (const auto& d : kDescrs)
    if (descr == d.descr) dtype = d.dtype;
  if (dtype == DataType::kUndefined) bad("unsupported dtype '" + descr + "' (little-endian numeric types only)");
  if (dictValue(header, "fortran_order") != "False") bad("Fortran-order arrays are not supported");

  std::string shapeText = dictValue(header, "shape");
  Shape shape;
  std::string inner = shapeText.substr(1, shapeText.size() - 2);
  std::stringstream ss(inner);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (item.empty()) continue;
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (*end != '\0' || v < 0) bad("malformed shape " + shapeText);
    shape.push_back(v);
  }
  int64_t numel = shapeNumel(shape);
  size_t elem = dataTypeSize(dtype);
  if (static_cast<uint64_t>(numel) > (size - offset) / elem)
    bad("data is " + std::to_string(size - offset) + " bytes, shape " + shapeToString(shape) + " needs " +
        std::to_string(static_cast<uint64_t>(numel) * elem));
  Tensor t(dtype, shape);
  if (!t.bytes.empty()) std::memcpy(t.bytes.data(), data + offset, t.bytes.size());
  return t;
}

Tensor readNpy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw BuildError(ErrorCode::kIo, "cannot read " + path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  try {
    return parseNpy(bytes.data(), bytes.size());
  } catch (const BuildError& e) {
    throw BuildError(e.code(), path + ": " + e.what());
  }
}

std::vector<uint8_t> encodeNpy(const Tensor& t) {
  const char* descr = nullptr;
  for (const auto& d : kDescrs)
    if (d.dtype == t.dtype) descr = d.descr;
  if (!descr) throw BuildError(ErrorCode::kIo, std::string("cannot write ") + dataTypeName(t.dtype) + " tensors as .npy");
  std::string shape = "(";
  for (size_t i = 0; i < t.shape.size(); ++i) shape += std::to_string(t.shape[i]) + (t.shape.size() == 1 ? "," : (i + 1 < t.shape.size() ? ", " : ""));
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so the data starts on a 64-byte boundary, header ends with '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  const uint8_t prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(header.size() & 0xff), uint8_t(header.size() >> 8)};
  std::vector<uint8_t> out(sizeof(prefix) + header.size() + t.bytes.size());
  std::memcpy(out.data(), prefix, sizeof(prefix));
  std::memcpy(out.data() + sizeof(prefix), header.data(), header.size());
  if (!t.bytes.empty()) std::memcpy(out.data() + sizeof(prefix) + header.size(), t.bytes.data(), t.bytes.size());
  return out;
}

void writeNpy(const std::string& path, const Tensor& t) {
  std::vector<uint8_t> bytes = encodeNpy(t);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw BuildError(ErrorCode::kIo, "cannot write " + path);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw BuildError(ErrorCode::kIo, "cannot write " + path);
}

}  // namespace planforge
