#pragma once
// Quantization runs for the CLI and the GUI, behind a torch-free header (see api/model_jobs.h).
#include <string>
#include <vector>

#include "api/job_types.h"
#include "pipeline/run_config.h"
#include "rundir/run_event.h"
#include "util/stop_token.h"

namespace tessera::api {

QuantizeReport quantize(const pipeline::RunConfig& config, const std::string& run_dir, bool resume,
                        rundir::EventSink& events, const StopToken& stop = StopToken());

}  // namespace tessera::api
