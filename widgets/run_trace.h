#pragma once
// Everything the workbench plots about one quantization run, as plain data: the worker's events
// fill it through RunMetricsStore, the plots and the heatmap read copies of it, and the session
// file stores it so that a reopened session shows the same curves.
#include <cstdint>
#include <string>
#include <vector>

#include "eval/layer_stats_record.h"

namespace tessera::widgets {

// The optimisation step axis of every run plot: block k spans [k, k + 1), a step at
// `step / total_steps` of the way through its block. Blocks of different length line up, and the
// block boundaries are the integers.
inline double block_position(std::int64_t block, std::int64_t step, std::int64_t total_steps) {
  return static_cast<double>(block) + (total_steps > 0 ? static_cast<double>(step) / total_steps : 1.0);
}

struct StepLossPoint {
  double x = 0;  // block_position
  double loss = 0;
  std::int64_t iteration = 0;  // PAR iteration
};

struct HardeningPoint {
  double x = 0;
  double reached = 0;  // hard fraction reached after the iteration
  double target = 0;   // the schedule's hard fraction (1 - soft fraction)
};

struct BlockLoss {
  std::int64_t block = 0;
  double loss_rtn = 0;  // block output loss of plain RTN
  double loss = 0;      // after the method
  double seconds = 0;
};

struct MemoryPoint {
  double seconds = 0;    // since the run started
  double gpu_bytes = 0;  // allocated on the run's GPU (0 on CPU)
  double rss_bytes = 0;  // resident memory of the worker process that runs it
};

struct RunProgress {
  std::string phase;  // "loading", "quantizing", "evaluating", "finished", ...
  std::int64_t block = -1, total_blocks = 0;
  std::int64_t step = 0, total_steps = 0;
  std::int64_t iteration = 0, total_iterations = 0;
  double eta_seconds = 0;
};

struct RunTrace {
  std::vector<StepLossPoint> steps;
  std::vector<HardeningPoint> hardening;
  std::vector<BlockLoss> blocks;
  std::vector<MemoryPoint> memory;
  std::vector<eval::LayerStats> layers;
  RunProgress progress;
  std::int64_t skipped_steps = 0;

  double peakGpuBytes() const;
  double peakRssBytes() const;
};

}  // namespace tessera::widgets
