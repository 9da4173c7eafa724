// Minimal SHA-256 (FIPS 180-4), so the core has no crypto library dependency.
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace planforge {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::array<uint8_t, 32> digest();  // finalizes; the object must not be updated afterwards
  std::string hexDigest();
 private:
  void block(const uint8_t* p);
  void blocks(const uint8_t* p, size_t n);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t bufLen_ = 0;
  uint64_t total_ = 0;
};

std::string sha256Hex(const void* data, size_t size);
std::string toHex(const uint8_t* data, size_t size);
// Tests: use the portable implementation even where SHA-NI exists.
void sha256ForcePortable(bool portable);

}  // namespace planforge
