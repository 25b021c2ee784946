#pragma once
// SHA-256 (FIPS 180-4), for model file fingerprints and calibration hashes recorded in runs.
#include <cstddef>
#include <cstdint>
#include <string>

namespace tessera {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  std::string hex_digest();  // finishes the hash; call once

 private:
  void block(const std::uint8_t* p);
  std::uint32_t h_[8];
  std::uint8_t buffer_[64];
  std::size_t buffered_ = 0;
  std::uint64_t length_ = 0;
};

std::string sha256_hex(const void* data, std::size_t size);
std::string sha256_file(const std::string& path);  // throws tessera::Error if unreadable

}  // namespace tessera
