#pragma once
#include <string>

namespace tessera::text {
// Reads a whole UTF-8 text file; throws naming the file if it is missing or empty.
std::string read_text_file(const std::string& path);
}  // namespace tessera::text
