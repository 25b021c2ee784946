#pragma once
// One quantized Linear of a finished (or partly finished) run, in numbers a front end can plot:
// how its integer codes differ from plain round-to-nearest of the checkpoint's weight, how its
// per-group scales differ from RTN's, and TesseraQ's DST factors. Read from the run directory
// (run.json, blocks/block_NNN.safetensors) and the model; torch-free header like api/model_jobs.h.
#include <cstdint>
#include <string>
#include <vector>

#include "api/job_types.h"

namespace tessera::api {

// Throws tessera::Error naming the run, block or layer when it is not there.
LayerDetail layer_detail(const std::string& run_dir, std::int64_t block, const std::string& layer);

}  // namespace tessera::api
