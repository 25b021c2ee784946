#include "formats/bit_packing.h"

#include <string>

#include "util/error.h"

namespace tessera::formats {

std::vector<std::uint32_t> pack_bitstream(const std::uint8_t* values, std::size_t count, int bits) {
  if (bits < 1 || bits > 8) throw Error("bit packing: " + std::to_string(bits) + " bits per value is not supported");
  if ((count * static_cast<std::size_t>(bits)) % 32 != 0)
    throw Error("bit packing: " + std::to_string(count) + " values of " + std::to_string(bits) +
                " bits do not fill whole 32-bit words");
  std::vector<std::uint32_t> words(count * static_cast<std::size_t>(bits) / 32, 0u);
  const std::uint32_t max = (1u << bits) - 1u;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint32_t v = values[i];
    if (v > max)
      throw Error("bit packing: value " + std::to_string(v) + " at position " + std::to_string(i) +
                  " does not fit in " + std::to_string(bits) + " bits");
    const std::size_t bit = i * static_cast<std::size_t>(bits);
    const std::size_t word = bit / 32, offset = bit % 32;
    words[word] |= v << offset;
    if (offset + static_cast<std::size_t>(bits) > 32) words[word + 1] |= v >> (32 - offset);  // straddles
  }
  return words;
}

std::vector<std::uint8_t> unpack_bitstream(const std::uint32_t* words, std::size_t count, int bits) {
  std::vector<std::uint8_t> values(count);
  const std::uint32_t max = (1u << bits) - 1u;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t bit = i * static_cast<std::size_t>(bits);
    const std::size_t word = bit / 32, offset = bit % 32;
    std::uint64_t v = words[word] >> offset;
    if (offset + static_cast<std::size_t>(bits) > 32) v |= static_cast<std::uint64_t>(words[word + 1]) << (32 - offset);
    values[i] = static_cast<std::uint8_t>(v & max);
  }
  return values;
}

std::uint32_t awq_pack_word(const std::uint8_t* eight_values) {
  std::uint32_t word = 0;
  for (int i = 0; i < 8; ++i) {
    const std::uint32_t v = eight_values[kAwqOrder[static_cast<std::size_t>(i)]];
    if (v > 15) throw Error("AWQ packing: value " + std::to_string(v) + " does not fit in 4 bits");
    word |= v << (4 * i);
  }
  return word;
}

void awq_unpack_word(std::uint32_t word, std::uint8_t* eight_values) {
  for (int i = 0; i < 8; ++i)
    eight_values[kAwqOrder[static_cast<std::size_t>(i)]] = static_cast<std::uint8_t>((word >> (4 * i)) & 15u);
}

void q4_1_pack_nibbles(const std::uint8_t* codes, std::uint8_t* bytes) {
  for (int j = 0; j < 16; ++j) {
    if (codes[j] > 15 || codes[j + 16] > 15) throw Error("Q4_1 packing: a code does not fit in 4 bits");
    bytes[j] = static_cast<std::uint8_t>(codes[j] | (codes[j + 16] << 4));
  }
}

void q4_1_unpack_nibbles(const std::uint8_t* bytes, std::uint8_t* codes) {
  for (int j = 0; j < 16; ++j) {
    codes[j] = bytes[j] & 15u;
    codes[j + 16] = static_cast<std::uint8_t>(bytes[j] >> 4);
  }
}

}  // namespace tessera::formats
