#pragma once
// Quantization settings small enough for CI's two cores on stories260K: 4 calibration windows of
// 64 tokens, coarse AWQ grids, two PAR iterations. The GUI tests run real runs with them.
#include "pipeline/run_config.h"

namespace tessera_test {

inline void shrink_for_ci(tessera::pipeline::RunConfig& c, std::int64_t tq_steps) {
  c.samples = 4;
  c.seq_len = 64;
  c.batch_size = 4;
  c.awq_grid = 5;
  c.awq_clip_grid = 5;
  c.awq_clip_tokens = 64;
  c.oq_epochs = 1;
  c.tq_schedule = "0.5,0";
  c.tq_steps = tq_steps;
  c.tq_batch = 2;
  c.tq_log_every = 1;
}

}  // namespace tessera_test
