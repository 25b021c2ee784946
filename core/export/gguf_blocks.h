#pragma once
// GGUF's 32-weight block types, one table and one codec (ggml-common.h block_q4_0 ... block_q8_0;
// ggml-quants.c dequantize_row_*). Each block stores an fp16 scale d, for the _1 types an fp16
// offset m, and 32 codes q:
//   Q4_0  18 bytes  d, 16 bytes of nibbles                  y = (q - 8) d
//   Q4_1  20 bytes  d, m, 16 bytes of nibbles               y = q d + m
//   Q5_0  22 bytes  d, 4 bytes of fifth bits, 16 of nibbles y = (q - 16) d
//   Q5_1  24 bytes  d, m, 4 bytes of fifth bits, 16 nibbles y = q d + m
//   Q8_0  34 bytes  d, 32 signed bytes                      y = (q - 128) d   (int8 q - 128 stored)
// Nibbles: element j in the low half of byte j, element j + 16 in the high half; the fifth bit of
// element j is bit j of the little-endian uint32. Codes here are always unsigned, 0 .. 2^bits - 1
// (Tessera's codes); the symmetric types' offset 2^(bits-1) is Tessera's zero point.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "export/gguf_file.h"

namespace tessera::exporting {

struct GgufBlockType {
  GgmlType type;
  std::string format_id;  // the export format writing it, e.g. "gguf-q4_0"
  int bits;
  bool symmetric;                 // y = (q - 2^(bits-1)) d; else y = q d + m
  std::size_t bytes;              // per block of 32
  std::uint32_t llama_file_type;  // general.file_type (llama_ftype MOSTLY_*)
};

const std::vector<GgufBlockType>& gguf_block_types();
const GgufBlockType* gguf_block_type(GgmlType type);                 // nullptr: not a block type
const GgufBlockType* gguf_block_type(const std::string& format_id);  // nullptr: no such format

// One block: 32 codes (each < 2^bits, else throws), d and (for the _1 types) m -> bytes.
void pack_gguf_block(const GgufBlockType& t, const std::uint8_t* codes, float d, float m, std::uint8_t* out);
// bytes -> 32 codes, d and m (0 for the symmetric types).
void unpack_gguf_block(const GgufBlockType& t, const std::uint8_t* in, std::uint8_t* codes, float& d, float& m);
// The weight llama.cpp computes from one code, in fp32 as ggml does.
inline float gguf_block_value(const GgufBlockType& t, std::uint8_t code, float d, float m) {
  return t.symmetric ? static_cast<float>(static_cast<int>(code) - (1 << (t.bits - 1))) * d
                     : static_cast<float>(code) * d + m;
}

}  // namespace tessera::exporting
