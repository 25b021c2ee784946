#pragma once
// Locates the real models and texts in ../shared (beside the project root; overridable with the
// TESSERA_SHARED_DIR environment variable, as on the GPU machine) and the built `tessera` binary.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace tessera_test {

// stories260K (llama2.c format), the real model most tests run on, under shared/data.
inline const char* const kStories = "models/stories260K/stories260K.bin";

inline std::string shared_dir() {
  if (const char* env = std::getenv("TESSERA_SHARED_DIR")) return env;
  return TESSERA_TEST_SHARED_DIR;  // set by tests/CMakeLists.txt to <project>/../shared
}

// Path of a file under shared/data, or "" when it is missing (callers fail with missing_message).
inline std::string shared_data(const std::string& relative) {
  const auto p = std::filesystem::path(shared_dir()) / "data" / relative;
  return std::filesystem::exists(p) ? p.string() : std::string();
}

inline std::string missing_message(const std::string& relative) {
  return "test data missing: " + (std::filesystem::path(shared_dir()) / "data" / relative).string() +
         " (the tests need the shared/ folder beside the project root, or TESSERA_SHARED_DIR)";
}

inline std::string cli_binary() { return TESSERA_TEST_CLI_BINARY; }

// The folders fresh_temp_dir made, removed when the test process exits (they used to stay: 5,557 of
// them, 7 GB, in this machine's /tmp) unless TESSERA_KEEP_TEST_DIRS is set, to look at after a failure.
struct TempDirs {
  std::vector<std::filesystem::path> made;
  ~TempDirs() {
    if (std::getenv("TESSERA_KEEP_TEST_DIRS")) return;
    std::error_code ec;
    for (const auto& p : made) std::filesystem::remove_all(p, ec);
  }
};

// A fresh empty folder under the system's temporary area.
inline std::string fresh_temp_dir(const std::string& name) {
  static TempDirs dirs;
  auto p = std::filesystem::temp_directory_path() / ("tessera-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  dirs.made.push_back(p);
  return p.string();
}

// A file's bytes as they are on disk ("" when it cannot be read).
inline std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The lines of `text` that fit in `max_bytes`, as a file of their own: for tests whose check holds on
// any text (an export that scores exactly like its run), a few windows instead of all of it.
inline std::string text_excerpt(const std::string& text, std::size_t max_bytes) {
  auto bytes = file_bytes(text);
  if (bytes.size() > max_bytes) {
    const auto line_end = bytes.rfind('\n', max_bytes - 1);
    bytes.resize(line_end == std::string::npos ? max_bytes : line_end + 1);
  }
  const auto out =
      fresh_temp_dir("excerpt-" + std::to_string(max_bytes)) + "/" + std::filesystem::path(text).filename().string();
  std::ofstream(out, std::ios::binary) << bytes;
  return out;
}

}  // namespace tessera_test

#define TESSERA_REQUIRE_DATA(var, relative)                    \
  const std::string var = tessera_test::shared_data(relative); \
  if (var.empty()) QFAIL(tessera_test::missing_message(relative).c_str())
