#pragma once
// The GGUF v3 container (ggml docs/gguf.md): little-endian header "GGUF", version 3, tensor count,
// metadata count; typed key/value pairs; tensor infos (name, dims in ggml order ne[0] = innermost,
// ggml type, offset into the data section); then the data section, every tensor aligned to
// general.alignment (32). The reader validates every length and offset against the file size, so a
// truncated or damaged file fails with a message instead of reading past the end.
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace tessera::formats {

// ggml tensor types this project writes or reads (ggml.h enum ggml_type).
enum class GgmlType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  IQ4_NL = 20,
  BF16 = 30
};
std::string ggml_type_name(GgmlType type);
// Bytes of `elements` (a multiple of the type's block size) of `type`.
std::size_t ggml_row_bytes(GgmlType type, std::uint64_t elements);

class GgufWriter {
 public:
  void add_u32(const std::string& key, std::uint32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_strings(const std::string& key, const std::vector<std::string>& v);
  void add_f32s(const std::string& key, const std::vector<float>& v);
  void add_i32s(const std::string& key, const std::vector<std::int32_t>& v);
  // `ne` in ggml order (ne[0] = the contiguous dimension, K for a weight [N, K]).
  void add_tensor(const std::string& name, const std::vector<std::uint64_t>& ne, GgmlType type,
                  std::vector<std::uint8_t> bytes);
  void write(std::ostream& out) const;
  // SHA-256 over every tensor's bytes in file order (stored by exports as "tessera.tensor_data_sha256").
  std::string tensor_data_sha256() const;

 private:
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> ne;
    GgmlType type;
    std::vector<std::uint8_t> bytes;
  };
  std::vector<std::pair<std::string, std::string>> kv_;  // key, encoded type + value
  std::vector<Tensor> tensors_;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::uint64_t> ne;
  GgmlType type = GgmlType::F32;
  const std::uint8_t* data = nullptr;  // into the mapped file
  std::size_t nbytes = 0;
  std::size_t file_offset = 0;  // where the data starts in the file
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);  // throws tessera::Error naming the defect
  const std::string& path() const { return file_->path(); }
  // Metadata as JSON values (numbers, bools, strings, arrays).
  const nlohmann::json& metadata() const { return metadata_; }
  const nlohmann::json& value(const std::string& key) const;  // throws naming the key if absent
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const GgufTensorInfo& tensor(const std::string& name) const;  // throws naming the tensor if absent
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  std::string tensor_data_sha256() const;  // as GgufWriter computes it

 private:
  std::shared_ptr<io::MappedFile> file_;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
};

}  // namespace tessera::formats
