#include "api/quantize_jobs.h"

#include "pipeline/quantization_run.h"

namespace tessera::api {

QuantizeReport quantize(const pipeline::RunConfig& config, const std::string& run_dir, bool resume,
                        pipeline::EventSink& events, const StopToken& stop) {
  const auto s = pipeline::run_quantization(config, run_dir, resume, events, stop);
  QuantizeReport r;
  r.run_dir = s.run_dir;
  r.blocks = s.blocks;
  r.restored_blocks = s.restored_blocks;
  r.seconds = s.seconds;
  r.calibration_sha256 = s.calibration_sha256;
  r.placement = s.placement;
  r.layers = s.layers;
  r.loss_rtn = s.loss_before;
  r.loss = s.loss_after;
  return r;
}

}  // namespace tessera::api
