#include "runtime/error_message.h"

#include <torch/torch.h>

#include <filesystem>
#include <new>

namespace tessera::runtime {
namespace {

const char* const kMemoryAdvice =
    "`tessera plan` with the same options forecasts a run's memory; fewer --samples, a shorter --seq-len or a "
    "smaller --batch need less";

std::string first_line(const std::string& s) {
  const auto end = s.find('\n');
  return end == std::string::npos ? s : s.substr(0, end);
}

// CUDA's "CUDA out of memory", the CPU allocator's "can't allocate memory" (libtorch 1.13) or "not
// enough memory" (2.x).
bool mentions_out_of_memory(const std::string& s) {
  for (const char* m : {"out of memory", "can't allocate memory", "not enough memory"})
    if (s.find(m) != std::string::npos) return true;
  return false;
}

}  // namespace

std::string error_message(const std::exception& e) {
  if (const auto* fe = dynamic_cast<const std::filesystem::filesystem_error*>(&e)) {
    // what() is "filesystem error: cannot create directories: No space left on device [/a] [/b]".
    std::string what = fe->what();
    const std::string prefix = "filesystem error: ";
    if (what.rfind(prefix, 0) == 0) what = what.substr(prefix.size());
    std::string operation = what.substr(0, what.find(':'));
    std::string paths = fe->path1().string();
    if (!fe->path2().empty()) paths += " -> " + fe->path2().string();
    return operation + " " + paths + ": " + fe->code().message();
  }
  if (const auto* te = dynamic_cast<const c10::Error*>(&e)) {
    const std::string msg = first_line(te->what_without_backtrace());
    if (mentions_out_of_memory(msg)) return "out of memory: " + msg + ". " + kMemoryAdvice;
    return "libtorch: " + msg;
  }
  if (dynamic_cast<const std::bad_alloc*>(&e))
    return std::string("out of host memory (std::bad_alloc). ") + kMemoryAdvice;
  return e.what();
}

}  // namespace tessera::runtime
