// NumPy .npy (format 1.0/2.0/3.0) read/write for float32, float16, float64, int64, int32,
// int16, int8, uint8, bool; little-endian, C order only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor.h"

namespace planforge {

// Throws BuildError(kIo) when unreadable, BuildError(kParse) on a malformed header,
// an unsupported dtype, Fortran order or a size that does not match the header.
Tensor readNpy(const std::string& path);
Tensor parseNpy(const uint8_t* data, size_t size);

void writeNpy(const std::string& path, const Tensor& t);  // BuildError(kIo) on failure
std::vector<uint8_t> encodeNpy(const Tensor& t);

}  // namespace planforge
