#pragma once
#include <string>

namespace tessera::text {

// How Tessera reads text: universal newlines, as Python's text mode does ("\r\n" and a lone "\r"
// become "\n"), so that tokens and perplexities match every Python tool on files with Windows or
// old Mac line endings. Recorded as "newlines" in evaluation JSON and the run manifest.
inline constexpr const char* kNewlineHandling = "universal";
std::string universal_newlines(std::string text);

// Reads a whole UTF-8 text file with universal newlines; throws naming the file if it is missing
// or empty.
std::string read_text_file(const std::string& path);

}  // namespace tessera::text
