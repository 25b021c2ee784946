#pragma once
// GPT-2's byte-to-unicode table, used by byte-level BPE (GPT-2, LLaMA-3, Qwen2, SmolLM): every
// byte is written as one printable character, so that a vocabulary of strings covers all bytes.
// Printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves; the other 68 map to
// U+0100.. in byte order (space -> U+0120 "Ġ", newline -> U+010A "Ċ").
#include <string>
#include <string_view>

namespace tessera::text::byte_level {

// UTF-8 of the character that stands for `byte`.
const std::string& char_for_byte(unsigned char byte);
// Every byte of `bytes` replaced by its character.
std::string encode(std::string_view bytes);
// The bytes a token's characters stand for; false (and `bytes` unspecified) when some character
// is not one of the 256 stand-ins.
bool decode(std::string_view token, std::string& bytes);

}  // namespace tessera::text::byte_level
