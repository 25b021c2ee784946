#pragma once
// The bit layouts of the packed quantized formats (AutoGPTQ's qlinear_cuda_old.py pack(), AutoAWQ's
// awq/utils/packing_utils.py, ggml's ggml-common.h block_q4_1), kept free of torch so the golden
// tests can check them word by word.
//
// GPTQ (AutoGPTQ pack(), b = 2, 3, 4, 8): b-bit values laid end to end in a little-endian bit
// stream of 32-bit words; value i occupies stream bits [b*i, b*i + b). For b = 2, 4, 8 this is
// "value j of word r at bits b*j"; for b = 3 it is exactly AutoGPTQ's 3-words-per-32-values
// layout, where values 10 and 21 straddle the word boundaries.
// AWQ-GEMM: 8 nibbles per word in the interleaved order [0, 2, 4, 6, 1, 3, 5, 7].
// GGUF Q4_1: 32 weights per block, byte j = element j (low nibble) | element j + 16 (high nibble).
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tessera::formats {

// Packs `count` values (each < 2^bits) into count*bits/32 words; count*bits must be a multiple of
// 32. Throws tessera::Error when a value does not fit or the count is not a whole number of words.
std::vector<std::uint32_t> pack_bitstream(const std::uint8_t* values, std::size_t count, int bits);
// The inverse: `count` values of `bits` bits read from `words`.
std::vector<std::uint8_t> unpack_bitstream(const std::uint32_t* words, std::size_t count, int bits);

// AWQ's order: nibble i of a word holds column 8c + kAwqOrder[i].
inline constexpr std::array<int, 8> kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7};
std::uint32_t awq_pack_word(const std::uint8_t* eight_values);  // values 8c .. 8c+7 (each < 16)
void awq_unpack_word(std::uint32_t word, std::uint8_t* eight_values);

// One Q4_1 block's 16 bytes of nibbles from 32 codes (each < 16), and back.
void q4_1_pack_nibbles(const std::uint8_t* thirty_two_codes, std::uint8_t* sixteen_bytes);
void q4_1_unpack_nibbles(const std::uint8_t* sixteen_bytes, std::uint8_t* thirty_two_codes);

}  // namespace tessera::formats
