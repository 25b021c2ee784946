#include "pipeline/run_directory.h"

#include <cstdio>
#include <filesystem>
#include <vector>

#include "util/error.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace tessera::pipeline {

std::string RunFingerprint::differences(const RunFingerprint& o) const {
  std::string out;
  auto cmp = [&](const char* what, const std::string& a, const std::string& b) {
    if (a != b) out += std::string(what) + ": the run has " + a + ", now " + b + "\n";
  };
  cmp("model files (sha256)", model_sha256, o.model_sha256);
  cmp("settings", config, o.config);
  cmp("calibration tokens (sha256)", calibration_sha256, o.calibration_sha256);
  cmp("code version", code_version, o.code_version);
  return out;
}

std::string RunDirectory::block_path(std::int64_t block) const {
  char name[64];
  std::snprintf(name, sizeof(name), "/blocks/block_%03lld.safetensors", static_cast<long long>(block));
  return path_ + name;
}

std::string RunDirectory::stats_path(std::int64_t block) const {
  char name[64];
  std::snprintf(name, sizeof(name), "/stats/block_%03lld.json", static_cast<long long>(block));
  return path_ + name;
}

bool RunDirectory::has_manifest() const { return fs::exists(manifest_path()); }
bool RunDirectory::has_block(std::int64_t block) const { return fs::exists(block_path(block)); }

void RunDirectory::create() const {
  std::error_code ec;
  fs::create_directories(path_ + "/blocks", ec);
  if (!ec) fs::create_directories(path_ + "/stats", ec);
  if (ec) throw Error("cannot create run directory " + path_ + ": " + ec.message());
}

std::string hash_model_files(const std::string& model_path) {
  if (!fs::is_directory(model_path)) return sha256_file(model_path);
  // A folder: hash config.json and the weight files, in name order.
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(model_path)) {
    const auto name = e.path().filename().string();
    if (name == "config.json" || e.path().extension() == ".safetensors") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  Sha256 h;
  for (const auto& f : files) {
    const auto digest = sha256_file(f) + " " + fs::path(f).filename().string() + "\n";
    h.update(digest.data(), digest.size());
  }
  return h.hex_digest();
}

}  // namespace tessera::pipeline
