#pragma once
// TesseraQ's settings as the method uses them (declared in methods/tesseraq_settings.cpp).
#include <string>
#include <vector>

#include "pipeline/run_config.h"

namespace tessera::methods {

// The PAR soft fractions of a schedule (TesseraQ, arXiv 2410.19103): paper20, paper10 (the
// thresholds of the official configs, configs/quantization/*.yml) or a non-increasing comma list
// in [0, 1). Throws naming the bad entry.
std::vector<double> par_thresholds(const std::string& schedule);
std::vector<double> par_thresholds(const pipeline::RunConfig& run);  // of the run's "schedule"
// "" when `schedule` is one, else why not.
std::string par_schedule_problem(const std::string& schedule);

}  // namespace tessera::methods
