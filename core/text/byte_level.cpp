#include "text/byte_level.h"

#include <array>
#include <cstdint>

#include "util/utf8.h"

namespace tessera::text::byte_level {
namespace {

struct Table {
  std::array<std::string, 256> chars;     // byte -> UTF-8 of its character
  std::array<std::int16_t, 324> bytes{};  // code point (< 0x144) -> byte, -1 if none
  Table() {
    bytes.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      utf8::append(chars[static_cast<std::size_t>(b)], cp);
      bytes[cp] = static_cast<std::int16_t>(b);
    }
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

const std::string& char_for_byte(unsigned char byte) { return table().chars[byte]; }

std::string encode(std::string_view bytes) {
  const Table& t = table();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.chars[static_cast<unsigned char>(c)];
  return out;
}

bool decode(std::string_view token, std::string& bytes) {
  const Table& t = table();
  bytes.clear();
  for (std::size_t i = 0; i < token.size();) {
    if (utf8::sequence_length(token, i) == 0) return false;
    const char32_t cp = utf8::decode(token, i);
    if (cp >= t.bytes.size() || t.bytes[cp] < 0) return false;
    bytes.push_back(static_cast<char>(t.bytes[cp]));
    i += utf8::char_length(token, i);
  }
  return true;
}

}  // namespace tessera::text::byte_level
