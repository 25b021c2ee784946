#pragma once
// Shared by the harnesses: the parsers read files, so each input is written to one file per
// process in /dev/shm (memory, not disk); and the rule every harness checks: bad input may only
// ever end in tessera::Error (a message naming the defect). Any other exception escaping a parser
// (a raw nlohmann or std::filesystem error, std::bad_alloc from an absurd size) aborts as a finding,
// as do crashes, sanitizer reports and hangs.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>

#include "util/error.h"

namespace tessera_fuzz {

inline const std::string& input_path(const char* suffix) {
  static const std::string path = "/dev/shm/tessera-fuzz-" + std::to_string(::getpid()) + suffix;
  return path;
}

inline std::string write_input(const std::uint8_t* data, std::size_t size, const char* suffix) {
  const auto& path = input_path(suffix);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

template <typename F>
void expect_clean(F&& parse) {
  try {
    parse();
  } catch (const tessera::Error&) {
    // the expected outcome for bad input
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: an exception other than tessera::Error escaped: %s\n", e.what());
    std::abort();
  }
}

}  // namespace tessera_fuzz
