#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "util/error.h"
#include "util/sha256.h"

namespace tessera::io {

using nlohmann::json;

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
      return 1;
  }
  return 0;
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F64:
      return "F64";
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::BOOL:
      return "BOOL";
  }
  return "?";
}

DType dtype_from_name(const std::string& name, const std::string& context) {
  static const std::map<std::string, DType> names = {
      {"F64", DType::F64}, {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"I64", DType::I64},
      {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},   {"U8", DType::U8},     {"BOOL", DType::BOOL}};
  auto it = names.find(name);
  if (it == names.end()) throw Error(context + ": unsupported dtype \"" + name + "\"");
  return it->second;
}

std::int64_t TensorView::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  const std::size_t file_size = file_->size();
  if (file_size < 8)
    throw Error(path + ": not a safetensors file (" + std::to_string(file_size) +
                " bytes, shorter than the 8-byte header length)");
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, file_->data(), 8);  // little-endian on every platform we build for
  if (header_len > file_size - 8)
    throw Error(path + ": header length " + std::to_string(header_len) + " is longer than the file (" +
                std::to_string(file_size) + " bytes): the file is truncated or not safetensors");
  const char* header_begin = reinterpret_cast<const char*>(file_->data() + 8);
  json header;
  try {
    header = json::parse(header_begin, header_begin + header_len);
  } catch (const json::exception& e) {
    throw Error(path + ": header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw Error(path + ": header is not a JSON object");

  const std::uint8_t* data_begin = file_->data() + 8 + header_len;
  const std::size_t data_size = file_size - 8 - header_len;
  struct Range {
    std::size_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(path + ": __metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) throw Error(path + ": __metadata__ value for \"" + m.key() + "\" is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor \"" + name + "\"";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      throw Error(where + " lacks dtype, shape or data_offsets");
    if (!entry["dtype"].is_string()) throw Error(where + ": dtype is not a string");
    TensorView view;
    view.name = name;
    view.dtype = dtype_from_name(entry["dtype"].get<std::string>(), where);
    const json& shape = entry["shape"];
    if (!shape.is_array()) throw Error(where + ": shape is not an array");
    std::size_t expected = dtype_size(view.dtype);
    for (const auto& d : shape) {
      if (!d.is_number_integer() || d.get<std::int64_t>() < 0)
        throw Error(where + ": shape has a negative or non-integer dimension");
      const auto dim = static_cast<std::size_t>(d.get<std::int64_t>());
      if (dim != 0 && expected > (SIZE_MAX / dim)) throw Error(where + ": shape is too large");
      expected *= dim;
      view.shape.push_back(static_cast<std::int64_t>(dim));
    }
    const json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      throw Error(where + ": data_offsets must be two non-negative integers");
    const auto begin = offsets[0].get<std::uint64_t>();
    const auto end = offsets[1].get<std::uint64_t>();
    if (begin > end) throw Error(where + ": data_offsets begin after they end");
    if (end > data_size)
      throw Error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  ") run past the end of the data (" + std::to_string(data_size) +
                  " bytes): the file is truncated or the header lies");
    if (end - begin != expected)
      throw Error(where + ": dtype " + dtype_name(view.dtype) + " and shape need " + std::to_string(expected) +
                  " bytes but data_offsets span " + std::to_string(end - begin));
    view.data = data_begin + begin;
    view.nbytes = expected;
    ranges.push_back({begin, end, name});
    tensors_.emplace(name, std::move(view));
  }

  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end)
      throw Error(path + ": tensors \"" + ranges[i - 1].name + "\" and \"" + ranges[i].name +
                  "\" overlap in the data section");
  }
}

const TensorView& SafetensorsFile::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(path() + ": missing tensor \"" + name + "\"");
  return it->second;
}

void SafetensorsWriter::add(const std::string& name, DType dtype, const std::vector<std::int64_t>& shape,
                            const void* data, std::size_t nbytes) {
  std::size_t expected = dtype_size(dtype);
  for (auto d : shape) expected *= static_cast<std::size_t>(d);
  if (expected != nbytes)
    throw Error("safetensors writer: tensor \"" + name + "\" has " + std::to_string(nbytes) +
                " bytes, its shape needs " + std::to_string(expected));
  Entry e{dtype, shape, {}};
  e.bytes.assign(static_cast<const std::uint8_t*>(data), static_cast<const std::uint8_t*>(data) + nbytes);
  entries_[name] = std::move(e);
}

void SafetensorsWriter::write(std::ostream& out) const {
  json header = json::object();
  auto metadata = metadata_;
  if (!digest_key_.empty()) {
    json digests = json::object();
    for (const auto& [name, e] : entries_) digests[name] = sha256_hex(e.bytes.data(), e.bytes.size());
    metadata[digest_key_] = digests.dump();
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, e] : entries_) {
    header[name] = {
        {"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string text = header.dump();
  while ((text.size() % 8) != 0) text.push_back(' ');
  const std::uint64_t header_len = text.size();
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& [name, e] : entries_)
    out.write(reinterpret_cast<const char*>(e.bytes.data()), static_cast<std::streamsize>(e.bytes.size()));
}

bool verify_tensor_digests(const SafetensorsFile& file, const std::string& key) {
  const auto it = file.metadata().find(key);
  if (it == file.metadata().end()) return false;
  const auto digests = json::parse(it->second, nullptr, false);
  if (!digests.is_object()) throw Error(file.path() + ": metadata \"" + key + "\" is not a JSON object of digests");
  for (const auto& [name, view] : file.tensors()) {
    if (!digests.contains(name)) throw Error(file.path() + ": tensor \"" + name + "\" has no recorded digest");
    if (sha256_hex(view.data, view.nbytes) != digests[name].get<std::string>())
      throw Error(file.path() + ": tensor \"" + name + "\" does not match its recorded SHA-256: the file is corrupted");
  }
  if (digests.size() != file.tensors().size())
    throw Error(file.path() + ": the file holds " + std::to_string(file.tensors().size()) + " tensors but " +
                std::to_string(digests.size()) + " were written");
  return true;
}

void SafetensorsWriter::write_to_file(const std::string& path) const {
  write_file_atomically(path, [this](std::ostream& out) { write(out); });
}

}  // namespace tessera::io
