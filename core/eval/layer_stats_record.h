#pragma once
// One Linear's error statistics (see eval/layer_stats.h); torch-free for front ends.
#include <cstdint>
#include <string>

namespace tessera::eval {

struct LayerStats {
  std::int64_t block = 0;
  std::string layer;
  double rel_weight_error = 0, output_mse = 0, flip_ratio = 0;
  double dst_min = 1, dst_max = 1, dst_std = 0;  // DST factors (1, 1, 0 for methods without DST)
};

}  // namespace tessera::eval
