#pragma once
// Round-to-nearest group quantization (the min/max quantizer of AWQ, OmniQuant and TesseraQ):
//   s = max(hi - lo, 1e-5) / (2^b - 1),  z = clamp(-round(lo / s), 0, 2^b - 1),
//   q = clamp(round(w / s) + z, 0, 2^b - 1),  w_hat = (q - z) * s
// with lo/hi the group's min/max, optionally shrunk by per-group clip ratios (LLMC's asymmetric AWQ
// clip: lo*r, hi*r). Deviation from those quantizers: lo/hi first include 0 (group_quantizer.cpp).
// Symmetric: s = max(|lo|, |hi|, 1e-5) / (2^(b-1) - 1), z = 2^(b-1). Non-uniform levels (IQ4_NL)
// follow llama.cpp's own rule instead (quant/codebook_grid.h); their zero points are 0.
#include <torch/torch.h>

#include <string>

#include "quant/grid_target.h"
#include "quant/quantized_linear.h"

namespace tessera::quant {

struct GroupGrid {
  torch::Tensor scale;  // [O, G] float32
  torch::Tensor zero;   // [O, G] float32, integer-valued except for k-quant offsets (below)
};

// w [O, I] as [O, G, g] (differentiable); a ragged last group is padded with the row's last
// element. ungrouped() drops the padding again: [O, G, g] -> [O, cols].
torch::Tensor grouped(const torch::Tensor& w, std::int64_t group_size);
torch::Tensor ungrouped(const torch::Tensor& g, std::int64_t cols);

// Per (row, group) min and max of w [O, I] (float32). Returns {lo, hi}, each [O, G].
std::pair<torch::Tensor, torch::Tensor> group_min_max(const torch::Tensor& w, std::int64_t group_size);

// Scales s [O, G] moved to the nearest that the spec's GGUF target stores, with a straight-through
// gradient: fp16 values of at most spec.scale_bits significant bits (rounded to nearest, ties to
// even), or for k-quant grids (spec.superblock_levels) d * k per super-block. Returns s when the
// spec has neither. Throws when a scale is beyond fp16's range. The TesseraQ CUDA kernels round
// the same way.
torch::Tensor representable_scales(const torch::Tensor& s, const WeightQuantSpec& spec);

// GGUF's k-quants with mins (spec.superblock_offsets(): Q2_K, Q4_K, Q5_K) store each group's
// offset as dmin * m, dmin an fp16 value per super-block and m in 0..spec.superblock_levels, and
// compute y = s q - offset. The grid's zero point is then offset / s, a fraction; the offsets are
// found again by rounding z * s back onto that lattice (representable_offsets is idempotent), so
// that dequantization and the GGUF export use exactly the stored values. No gradient.
torch::Tensor representable_offsets(const torch::Tensor& offset, const WeightQuantSpec& spec);
torch::Tensor group_offsets(const torch::Tensor& scale, const torch::Tensor& zero, const WeightQuantSpec& spec);

// The zero point of asymmetric codes for group minima lo (<= 0) and scales s, both [O, G], without
// gradient: clamp(-round(lo / s), 0, 2^b - 1), or for k-quant offsets representable_offsets(-lo) / s.
torch::Tensor asymmetric_zero(const torch::Tensor& lo, const torch::Tensor& scale, const WeightQuantSpec& spec);

// The grid from (optionally clipped) group bounds. `clip_ratio` [O, G] or undefined (= 1).
GroupGrid compute_grid(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& clip_ratio = {});

torch::Tensor quantize_to_codes(const torch::Tensor& w, const GroupGrid& grid, const WeightQuantSpec& spec);

// RTN: grid + codes. `name` is used in error messages (e.g. "block 3 q_proj").
QuantizedLinear quantize_rtn(const torch::Tensor& w, const WeightQuantSpec& spec, const std::string& name,
                             const torch::Tensor& clip_ratio = {});

// RTN of one Linear of a run whose weight spec is `run_spec`, on the Linear's own grid
// (quant/grid_target.h linear_grid: a GGUF k-quant target's fallback type for rows that are not
// whole super-blocks), or unquantized in fp16 where llama.cpp would store F16.
QuantizedLinear quantize_linear_rtn(const torch::Tensor& w, const WeightQuantSpec& run_spec, const std::string& name,
                                    const torch::Tensor& clip_ratio = {});
// fake_quantize with the same choice of grid; an unquantized Linear is w rounded to fp16, and
// one on IQ4_NL levels its nearest levels (their gradient passes straight through).
torch::Tensor fake_quantize_linear(const torch::Tensor& w, const WeightQuantSpec& run_spec,
                                   const torch::Tensor& clip_ratio = {});

// Dequantized RTN weight in w's dtype (for searches that compare many candidate grids).
torch::Tensor fake_quantize(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& clip_ratio = {});

// Throws naming `name` when w holds NaN or infinite values.
void check_finite(const torch::Tensor& w, const std::string& name);

}  // namespace tessera::quant
