#include "util/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace tessera {

std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto log = std::make_shared<spdlog::logger>("tessera", sink);
    log->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    log->set_level(spdlog::level::info);
    return log;
  }();
  return instance;
}

}  // namespace tessera
