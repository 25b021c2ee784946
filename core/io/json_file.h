#pragma once
// Reading a JSON file whole (run manifests, statistics, export configs).
#include <nlohmann/json.hpp>
#include <string>

namespace tessera::io {

// Throws naming the path when it cannot be read or is not valid JSON.
nlohmann::json read_json_file(const std::string& path);

}  // namespace tessera::io
