#pragma once
// A read-only memory map of a whole file, so multi-gigabyte checkpoints are paged in on demand
// instead of being copied into memory.
#include <cstddef>
#include <cstdint>
#include <string>

namespace tessera::io {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace tessera::io
