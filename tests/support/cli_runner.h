#pragma once
// Runs a command as a user would (stdout and stderr together, exit status) and picks the JSON
// object a command printed; for the tests that drive the `tessera` binary and other programs.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "test_data.h"

namespace tessera_test {

struct CommandResult {
  int status = -1;
  std::string out;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) r.out += buf.data();
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline CommandResult run_cli(const std::string& args) { return run_command("\"" + cli_binary() + "\" " + args); }

// The last line that parses as a JSON object (log lines may precede it); null when there is none.
inline nlohmann::json last_json(const std::string& out) {
  nlohmann::json j;
  std::size_t start = 0;
  while (start < out.size()) {
    const auto end = out.find('\n', start);
    const auto line = out.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!line.empty() && line[0] == '{') {
      auto parsed = nlohmann::json::parse(line, nullptr, false);
      if (!parsed.is_discarded()) j = std::move(parsed);
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return j;
}

}  // namespace tessera_test
