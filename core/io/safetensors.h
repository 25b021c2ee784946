#pragma once
// Reader and writer for the safetensors format: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw tensor bytes.
// The reader memory-maps the file and validates the whole header before anything is read, because
// a truncated download or a file with a lying header must fail with a clear message, never crash.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace tessera::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

std::size_t dtype_size(DType dtype);
std::string dtype_name(DType dtype);  // safetensors spelling: "F32", "BF16", ...
DType dtype_from_name(const std::string& name, const std::string& context);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  const std::uint8_t* data = nullptr;  // points into the mapped file
  std::size_t nbytes = 0;
  std::int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws tessera::Error on any defect

  const std::string& path() const { return file_->path(); }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorView& tensor(const std::string& name) const;  // throws naming the file if absent
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors (copies of their bytes) and writes a safetensors file. Tensors are written in
// name order with contiguous offsets and the header padded to 8 bytes, as the reference library does.
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, const std::vector<std::int64_t>& shape, const void* data,
           std::size_t nbytes);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Also store the SHA-256 of every tensor's bytes as a JSON object {name: hex} under the metadata
  // key `key`, so that a reader can tell a corrupted tensor from a valid one (see verify_tensor_digests).
  void set_digest_key(const std::string& key) { digest_key_ = key; }
  void write(std::ostream& out) const;
  void write_to_file(const std::string& path) const;  // atomic

 private:
  struct Entry {
    DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
  std::string digest_key_;
};

// Checks every tensor of `file` against the digests a writer stored under metadata key `key`;
// throws naming the first tensor whose bytes changed. Returns false (checks nothing) when the file
// has no such key.
bool verify_tensor_digests(const SafetensorsFile& file, const std::string& key);

}  // namespace tessera::io
