#pragma once
// Quantization runs for the CLI and the GUI, behind a torch-free header (see api/model_jobs.h).
#include <string>
#include <vector>

#include "eval/layer_stats_record.h"
#include "pipeline/run_config.h"
#include "pipeline/run_events.h"
#include "util/stop_token.h"

namespace tessera::api {

struct QuantizeReport {
  std::string run_dir;
  std::int64_t blocks = 0, restored_blocks = 0;
  double seconds = 0;
  std::string calibration_sha256, placement;
  std::vector<eval::LayerStats> layers;
  std::vector<double> loss_rtn, loss;  // per block output loss: plain RTN vs the method
};

QuantizeReport quantize(const pipeline::RunConfig& config, const std::string& run_dir, bool resume,
                        pipeline::EventSink& events, const StopToken& stop = StopToken());

}  // namespace tessera::api
