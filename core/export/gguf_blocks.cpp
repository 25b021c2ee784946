#include "export/gguf_blocks.h"

#include <c10/util/Half.h>

#include <cstring>

#include "export/bit_packing.h"
#include "util/error.h"

namespace tessera::exporting {
namespace {

void put_half(std::uint8_t* p, float v) {
  const std::uint16_t bits = c10::Half(v).x;
  std::memcpy(p, &bits, 2);
}

float get_half(const std::uint8_t* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
}

// Offsets inside a block: after d (and m), the fifth bits (5-bit types), then the codes.
std::size_t scales_bytes(const GgufBlockType& t) { return t.symmetric ? 2 : 4; }

}  // namespace

const std::vector<GgufBlockType>& gguf_block_types() {
  // llama_ftype: MOSTLY_Q4_0 2, MOSTLY_Q4_1 3, MOSTLY_Q8_0 7, MOSTLY_Q5_0 8, MOSTLY_Q5_1 9.
  static const std::vector<GgufBlockType> types = {
      {GgmlType::Q4_0, "gguf-q4_0", 4, true, 18, 2}, {GgmlType::Q4_1, "gguf-q4_1", 4, false, 20, 3},
      {GgmlType::Q5_0, "gguf-q5_0", 5, true, 22, 8}, {GgmlType::Q5_1, "gguf-q5_1", 5, false, 24, 9},
      {GgmlType::Q8_0, "gguf-q8_0", 8, true, 34, 7},
  };
  return types;
}

const GgufBlockType* gguf_block_type(GgmlType type) {
  for (const auto& t : gguf_block_types())
    if (t.type == type) return &t;
  return nullptr;
}

const GgufBlockType* gguf_block_type(const std::string& format_id) {
  for (const auto& t : gguf_block_types())
    if (t.format_id == format_id) return &t;
  return nullptr;
}

void pack_gguf_block(const GgufBlockType& t, const std::uint8_t* codes, float d, float m, std::uint8_t* out) {
  const unsigned limit = 1u << t.bits;
  for (int j = 0; j < 32; ++j)
    if (codes[j] >= limit)
      throw Error(ggml_type_name(t.type) + " packing: code " + std::to_string(codes[j]) + " does not fit in " +
                  std::to_string(t.bits) + " bits");
  std::memset(out, 0, t.bytes);
  put_half(out, d);
  if (!t.symmetric) put_half(out + 2, m);
  std::uint8_t* p = out + scales_bytes(t);
  if (t.bits == 8) {
    for (int j = 0; j < 32; ++j) {
      const auto q = static_cast<std::int8_t>(static_cast<int>(codes[j]) - 128);
      std::memcpy(p + j, &q, 1);
    }
    return;
  }
  std::uint8_t low[32];
  std::uint32_t high = 0;
  for (int j = 0; j < 32; ++j) {
    low[j] = codes[j] & 15u;
    high |= static_cast<std::uint32_t>((codes[j] >> 4) & 1u) << j;
  }
  if (t.bits == 5) {
    std::memcpy(p, &high, 4);
    p += 4;
  }
  q4_1_pack_nibbles(low, p);
}

void unpack_gguf_block(const GgufBlockType& t, const std::uint8_t* in, std::uint8_t* codes, float& d, float& m) {
  d = get_half(in);
  m = t.symmetric ? 0.f : get_half(in + 2);
  const std::uint8_t* p = in + scales_bytes(t);
  if (t.bits == 8) {
    for (int j = 0; j < 32; ++j) {
      std::int8_t q;
      std::memcpy(&q, p + j, 1);
      codes[j] = static_cast<std::uint8_t>(static_cast<int>(q) + 128);
    }
    return;
  }
  std::uint32_t high = 0;
  if (t.bits == 5) {
    std::memcpy(&high, p, 4);
    p += 4;
  }
  q4_1_unpack_nibbles(p, codes);
  if (t.bits == 5)
    for (int j = 0; j < 32; ++j) codes[j] = static_cast<std::uint8_t>(codes[j] | (((high >> j) & 1u) << 4));
}

}  // namespace tessera::exporting
