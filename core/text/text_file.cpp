#include "text/text_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace tessera::text {

std::string universal_newlines(std::string text) {
  std::size_t out = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\r') {
      text[out++] = text[i];
      continue;
    }
    text[out++] = '\n';
    if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
  }
  text.resize(out);
  return text;
}

std::string read_text_file(const std::string& path) {
  if (std::filesystem::is_directory(path)) throw Error(path + " is a folder, expected a text file");
  // A FIFO or a device would block or never end; a text is a regular file.
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw Error(path + " is not a regular file (a pipe, socket or device), expected a text file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open text file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = universal_newlines(ss.str());
  if (text.find_first_not_of(" \t\n") == std::string::npos) throw Error("text file " + path + " is empty");
  return text;
}

}  // namespace tessera::text
