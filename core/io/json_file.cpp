#include "io/json_file.h"

#include <fstream>

#include "util/error.h"

namespace tessera::io {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + " cannot be read");
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) throw Error(path + " is not valid JSON");
  return j;
}

}  // namespace tessera::io
