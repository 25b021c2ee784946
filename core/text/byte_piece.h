#pragma once
// SentencePiece's byte-fallback tokens: the piece "<0xNN>" that stands for one byte (llama2.c's
// tokenizer.bin and Hugging Face's byte_fallback vocabularies name them the same way).
#include <string>
#include <string_view>

namespace tessera::text {

// "<0xNN>" with two upper-case hex digits.
inline std::string byte_piece(unsigned char byte) {
  constexpr char kHex[] = "0123456789ABCDEF";
  return std::string{'<', '0', 'x', kHex[byte >> 4], kHex[byte & 0xF], '>'};
}

// The byte a piece stands for, or -1 unless the piece is exactly "<0x" + two hex digits (either
// case) + ">".
inline int byte_of_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  const auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(piece[3]), lo = hex(piece[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace tessera::text
