#pragma once
// One quantized Linear of a finished (or partly finished) run, in numbers a front end can plot:
// how its integer codes differ from plain round-to-nearest of the checkpoint's weight, how its
// per-group scales differ from RTN's, and TesseraQ's DST factors. Read from the run directory
// (run.json, blocks/block_NNN.safetensors) and the model; torch-free header like api/model_jobs.h.
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::api {

struct LayerDetail {
  std::int64_t block = 0;
  std::string layer;   // "q_proj", ...
  std::string method;  // the run's method
  int bits = 0;
  std::int64_t rows = 0, cols = 0, group_size = 0, groups = 0;  // group_size: effective (per channel = cols)
  // Histogram of code - RTN code over all weights: code_change_counts[i] counts the delta
  // code_change_min + i. Plain RTN of the checkpoint's weight is the reference, so for methods
  // that transform the weight first (AWQ scaling, also under TesseraQ's AWQ init) the deltas
  // include that transform, not only rounding decisions.
  std::int64_t code_change_min = 0;
  std::vector<std::int64_t> code_change_counts;
  double changed_fraction = 0;  // share of weights whose code differs from RTN's
  // Per (row, group), row-major: the run's scale / RTN's scale of the same group.
  std::vector<double> scale_ratio;
  // TesseraQ's dequantization-scale factors per (row, group); empty for other methods.
  std::vector<double> dst_factors;
  std::vector<std::int64_t> code_counts;  // histogram of the run's codes, 2^bits bins
};

// Throws tessera::Error naming the run, block or layer when it is not there.
LayerDetail layer_detail(const std::string& run_dir, std::int64_t block, const std::string& layer);

}  // namespace tessera::api
