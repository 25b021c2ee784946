#include "pipeline/run_presets.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace fs = std::filesystem;

namespace tessera::pipeline {

std::string presets_dir() {
  if (const char* env = std::getenv("TESSERA_PRESETS_DIR"); env && *env) {
    if (!fs::is_directory(env)) throw Error(std::string("TESSERA_PRESETS_DIR=") + env + " is not a folder");
    return env;
  }
  const fs::path built_in = TESSERA_PRESETS_SOURCE_DIR;
  if (!fs::is_directory(built_in))
    throw Error("no run presets: " + built_in.string() +
                " is missing (set TESSERA_PRESETS_DIR to a folder of presets)");
  return built_in.string();
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(presets_dir()))
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

RunConfig apply_preset(const std::string& name_or_path, const RunConfig& base) {
  fs::path path = name_or_path;
  if (path.extension() != ".json") {
    path = fs::path(presets_dir()) / (name_or_path + ".json");
    if (!fs::exists(path)) {
      std::string known;
      for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
      throw Error("unknown preset \"" + name_or_path + "\" (available: " + known + ")");
    }
  }
  std::ifstream in(path);
  if (!in) throw Error("cannot open preset " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return RunConfig::from_json_text(text.str(), "preset " + path.string(), base);
}

}  // namespace tessera::pipeline
