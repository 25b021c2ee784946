#pragma once
// The core's single spdlog logger. Front ends add sinks to it (the GUI's log pane, a file).
#include <spdlog/spdlog.h>

#include <memory>

namespace tessera {
std::shared_ptr<spdlog::logger> logger();
}  // namespace tessera
