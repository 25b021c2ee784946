#include "formats/gguf_file.h"

#include <cstring>
#include <type_traits>

#include "formats/gguf_blocks.h"
#include "util/error.h"
#include "util/sha256.h"
#include "util/utf8.h"

namespace tessera::formats {
namespace {

// gguf_type (gguf.md)
enum : std::uint32_t { kU8 = 0, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kString, kArray, kU64, kI64, kF64 };
constexpr std::uint64_t kAlignment = 32;

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));  // little-endian hosts only, as everywhere here
}
void put_string(std::string& s, const std::string& v) {
  put<std::uint64_t>(s, v.size());
  s += v;
}

constexpr int kMaxArrayNesting = 4;  // llama.cpp's files use one level

struct Cursor {
  const std::uint8_t* p;
  const std::uint8_t* end;
  const std::string& path;
  void need(std::size_t n, const char* what) const {
    if (static_cast<std::size_t>(end - p) < n)
      throw Error(path + ": truncated GGUF file (ends while reading " + what + ")");
  }
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  std::string string(const char* what) {
    const auto n = get<std::uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    // GGUF strings are UTF-8; anything else would surface later as a raw JSON error.
    if (const auto bad = utf8::find_invalid(s); bad != std::string::npos)
      throw Error(path + ": " + what + " is not valid UTF-8 (byte " + std::to_string(bad) + " of " + std::to_string(n) +
                  ")");
    return s;
  }
  // depth: arrays within arrays; bounded so that a crafted file cannot exhaust the stack.
  nlohmann::json value(std::uint32_t type, const std::string& key, int depth = 0) {
    switch (type) {
      case kU8:
        return get<std::uint8_t>("a value");
      case kI8:
        return get<std::int8_t>("a value");
      case kU16:
        return get<std::uint16_t>("a value");
      case kI16:
        return get<std::int16_t>("a value");
      case kU32:
        return get<std::uint32_t>("a value");
      case kI32:
        return get<std::int32_t>("a value");
      case kF32:
        return get<float>("a value");
      case kBool:
        return get<std::uint8_t>("a value") != 0;
      case kString:
        return string("a string value");
      case kU64:
        return get<std::uint64_t>("a value");
      case kI64:
        return get<std::int64_t>("a value");
      case kF64:
        return get<double>("a value");
      case kArray: {
        const auto inner = get<std::uint32_t>("an array type");
        const auto n = get<std::uint64_t>("an array length");
        if (depth >= kMaxArrayNesting)
          throw Error(path + ": metadata \"" + key + "\" nests arrays deeper than " + std::to_string(kMaxArrayNesting));
        if (n > static_cast<std::uint64_t>(end - p))
          throw Error(path + ": metadata array \"" + key + "\" claims " + std::to_string(n) +
                      " elements, more than the file holds");
        nlohmann::json a = nlohmann::json::array();
        for (std::uint64_t i = 0; i < n; ++i) a.push_back(value(inner, key, depth + 1));
        return a;
      }
      default:
        throw Error(path + ": metadata \"" + key + "\" has unknown value type " + std::to_string(type));
    }
  }
};

}  // namespace

std::string ggml_type_name(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return "F32";
    case GgmlType::F16:
      return "F16";
    case GgmlType::Q4_0:
      return "Q4_0";
    case GgmlType::Q4_1:
      return "Q4_1";
    case GgmlType::Q5_0:
      return "Q5_0";
    case GgmlType::Q5_1:
      return "Q5_1";
    case GgmlType::Q8_0:
      return "Q8_0";
    case GgmlType::Q2_K:
      return "Q2_K";
    case GgmlType::Q3_K:
      return "Q3_K";
    case GgmlType::Q4_K:
      return "Q4_K";
    case GgmlType::Q5_K:
      return "Q5_K";
    case GgmlType::Q6_K:
      return "Q6_K";
    case GgmlType::IQ4_NL:
      return "IQ4_NL";
    case GgmlType::BF16:
      return "BF16";
  }
  return "?";
}

std::size_t ggml_row_bytes(GgmlType type, std::uint64_t elements) {
  switch (type) {
    case GgmlType::F32:
      return elements * 4;
    case GgmlType::F16:
    case GgmlType::BF16:
      return elements * 2;
    default: {
      const auto* b = gguf_block_type(type);  // formats/gguf_blocks.h
      return b ? elements / static_cast<std::uint64_t>(b->weights) * b->bytes : 0;
    }
  }
}

namespace {

std::string scalar_value(std::uint32_t type, const void* v, std::size_t size) {
  std::string s;
  put(s, type);
  s.append(static_cast<const char*>(v), size);
  return s;
}

template <typename T>
std::string array_value(std::uint32_t type, const std::vector<T>& v) {
  std::string s;
  put(s, kArray);
  put(s, type);
  put<std::uint64_t>(s, v.size());
  for (const auto& x : v) {
    if constexpr (std::is_same_v<T, std::string>)
      put_string(s, x);
    else
      put(s, x);
  }
  return s;
}

}  // namespace

void GgufWriter::add_u32(const std::string& key, std::uint32_t v) { kv_.emplace_back(key, scalar_value(kU32, &v, 4)); }
void GgufWriter::add_f32(const std::string& key, float v) { kv_.emplace_back(key, scalar_value(kF32, &v, 4)); }
void GgufWriter::add_bool(const std::string& key, bool v) {
  const std::uint8_t b = v ? 1 : 0;
  kv_.emplace_back(key, scalar_value(kBool, &b, 1));
}
void GgufWriter::add_string(const std::string& key, const std::string& v) {
  std::string s;
  put(s, kString);
  put_string(s, v);
  kv_.emplace_back(key, s);
}
void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& v) {
  kv_.emplace_back(key, array_value(kString, v));
}
void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& v) {
  kv_.emplace_back(key, array_value(kF32, v));
}
void GgufWriter::add_i32s(const std::string& key, const std::vector<std::int32_t>& v) {
  kv_.emplace_back(key, array_value(kI32, v));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<std::uint64_t>& ne, GgmlType type,
                            std::vector<std::uint8_t> bytes) {
  if (name.size() >= 64) throw Error("GGUF tensor name \"" + name + "\" is longer than 63 bytes");
  std::uint64_t elements = 1;
  for (auto d : ne) elements *= d;
  if (bytes.size() != ggml_row_bytes(type, elements))
    throw Error("GGUF writer: tensor \"" + name + "\" has " + std::to_string(bytes.size()) + " bytes, " +
                ggml_type_name(type) + " of its shape needs " + std::to_string(ggml_row_bytes(type, elements)));
  tensors_.push_back({name, ne, type, std::move(bytes)});
}

void GgufWriter::write(std::ostream& out) const {
  std::string head = "GGUF";
  put<std::uint32_t>(head, 3);
  put<std::uint64_t>(head, tensors_.size());
  put<std::uint64_t>(head, kv_.size());
  for (const auto& [key, value] : kv_) {
    put_string(head, key);
    head += value;
  }
  std::uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(head, t.name);
    put<std::uint32_t>(head, static_cast<std::uint32_t>(t.ne.size()));
    for (auto d : t.ne) put<std::uint64_t>(head, d);
    put<std::uint32_t>(head, static_cast<std::uint32_t>(t.type));
    put<std::uint64_t>(head, offset);
    offset += (t.bytes.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  head.resize((head.size() + kAlignment - 1) / kAlignment * kAlignment, '\0');
  out.write(head.data(), static_cast<std::streamsize>(head.size()));
  const std::string padding(kAlignment, '\0');
  for (const auto& t : tensors_) {
    out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
    const auto pad = (kAlignment - t.bytes.size() % kAlignment) % kAlignment;
    out.write(padding.data(), static_cast<std::streamsize>(pad));
  }
}

std::string GgufWriter::tensor_data_sha256() const {
  Sha256 h;
  for (const auto& t : tensors_) h.update(t.bytes.data(), t.bytes.size());
  return h.hex_digest();
}

std::string GgufFile::tensor_data_sha256() const {
  Sha256 h;
  for (const auto& t : tensors_) h.update(t.data, t.nbytes);
  return h.hex_digest();
}

GgufFile::GgufFile(const std::string& path) : file_(std::make_shared<io::MappedFile>(path)) {
  Cursor c{file_->data(), file_->data() + file_->size(), file_->path()};
  c.need(4, "the magic");
  if (std::memcmp(c.p, "GGUF", 4) != 0) throw Error(path + ": not a GGUF file (no \"GGUF\" magic)");
  c.p += 4;
  const auto version = c.get<std::uint32_t>("the version");
  if (version != 3) throw Error(path + ": GGUF version " + std::to_string(version) + " is not supported (3)");
  const auto n_tensors = c.get<std::uint64_t>("the tensor count");
  const auto n_kv = c.get<std::uint64_t>("the metadata count");
  // Counts checked against the size before anything is read: a metadata entry takes at least 13
  // bytes (key length, type, one byte of value), a tensor entry 32 (name length, dimension count,
  // one dimension, type, offset).
  const auto left = static_cast<std::uint64_t>(c.end - c.p);
  if (n_kv > left / 13)
    throw Error(path + ": claims " + std::to_string(n_kv) + " metadata entries, more than its " +
                std::to_string(file_->size()) + " bytes can hold");
  if (n_tensors > left / 32)
    throw Error(path + ": claims " + std::to_string(n_tensors) + " tensors, more than its " +
                std::to_string(file_->size()) + " bytes can hold");
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    const auto key = c.string("a metadata key");
    const auto type = c.get<std::uint32_t>("a metadata type");
    metadata_[key] = c.value(type, key);
  }
  std::uint64_t alignment = kAlignment;
  if (metadata_.contains("general.alignment")) {
    const auto& a = metadata_["general.alignment"];
    if (!a.is_number_unsigned()) throw Error(path + ": general.alignment is " + a.dump() + ", not an unsigned integer");
    alignment = a.get<std::uint64_t>();
  }
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw Error(path + ": general.alignment " + std::to_string(alignment) + " is not a power of two");
  std::vector<std::uint64_t> offsets;
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.string("a tensor name");
    const auto dims = c.get<std::uint32_t>("a tensor's dimension count");
    if (dims == 0 || dims > 4)
      throw Error(path + ": tensor \"" + t.name + "\" has " + std::to_string(dims) + " dimensions");
    // Bounded so that neither the element count nor its byte size can wrap around: no file this
    // reader maps holds 2^48 elements, and a wrapped size would pass the bounds check below.
    constexpr std::uint64_t kMaxElements = std::uint64_t(1) << 48;
    std::uint64_t elements = 1;
    for (std::uint32_t d = 0; d < dims; ++d) {
      t.ne.push_back(c.get<std::uint64_t>("a tensor dimension"));
      const auto n = t.ne.back();
      if (n != 0 && elements > kMaxElements / n)
        throw Error(path + ": tensor \"" + t.name + "\" claims more than 2^48 elements");
      elements *= n;
    }
    const auto type = c.get<std::uint32_t>("a tensor type");
    const auto* blocks = gguf_block_type(static_cast<GgmlType>(type));
    if (type != 0 && type != 1 && type != 30 && !blocks) {
      std::string known = "F32, F16, BF16";
      for (const auto& b : gguf_block_types()) known += ", " + ggml_type_name(b.type);
      throw Error(path + ": tensor \"" + t.name + "\" has ggml type " + std::to_string(type) +
                  ", which this reader does not decode (" + known + ")");
    }
    t.type = static_cast<GgmlType>(type);
    if (blocks && t.ne[0] % static_cast<std::uint64_t>(blocks->weights) != 0)
      throw Error(path + ": tensor \"" + t.name + "\" has rows of " + std::to_string(t.ne[0]) + ", not whole " +
                  std::to_string(blocks->weights) + "-element blocks");
    t.nbytes = ggml_row_bytes(t.type, elements);
    offsets.push_back(c.get<std::uint64_t>("a tensor offset"));
    if (offsets.back() % alignment != 0) throw Error(path + ": tensor \"" + t.name + "\" is not aligned");
    tensors_.push_back(std::move(t));
  }
  const std::size_t header = static_cast<std::size_t>(c.p - file_->data());
  const std::size_t data_start = (header + alignment - 1) / alignment * alignment;
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    auto& t = tensors_[i];
    // Compared by subtraction: a crafted offset near 2^64 would wrap a sum around to a small number.
    const std::uint64_t size = file_->size();
    if (data_start > size || offsets[i] > size - data_start || t.nbytes > size - data_start - offsets[i])
      throw Error(path + ": tensor \"" + t.name + "\" runs past the end of the file (" + std::to_string(file_->size()) +
                  " bytes): the file is truncated");
    t.file_offset = data_start + offsets[i];
    t.data = file_->data() + t.file_offset;
    if (!index_.emplace(t.name, i).second) throw Error(path + ": tensor \"" + t.name + "\" appears twice");
  }
}

const nlohmann::json& GgufFile::value(const std::string& key) const {
  if (!metadata_.contains(key)) throw Error(path() + ": metadata key \"" + key + "\" is missing");
  return metadata_.at(key);
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw Error(path() + ": missing tensor \"" + name + "\"");
  return tensors_[it->second];
}

}  // namespace tessera::formats
