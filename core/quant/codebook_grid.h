#pragma once
// Non-uniform grids (WeightQuantSpec::levels): llama.cpp's IQ4_NL, blocks of 32 weights with one
// fp16 scale d and 4-bit codes q that index a fixed table, y = d * kIq4NlLevels[q] (ggml-common.h
// kvalues_iq4nl, ggml-quants.c dequantize_row_iq4_nl). Tessera quantizes onto it by llama.cpp's own
// rule (quantize_row_iq4_nl_impl without an importance matrix): per group, the candidate scales
// that map the group's largest magnitude onto either end of the table, each refined by weighted
// least squares with weights x^2, the best kept, rounded to fp16, and every weight given the
// nearest level. The grid's zero points are 0 and unused.
#include <torch/torch.h>

#include "quant/iq4_nl_levels.h"
#include "quant/quant_spec.h"

namespace tessera::quant {

// Per-group fp16 scales [O, G] of w [O, I] for spec (spec.levels != Uniform), and the codes of w
// on them (uint8 [O, I]). `clip_ratio` [O, G] (or undefined) first clamps each group to its
// min/max times the ratio, as AWQ's clip does for uniform grids.
torch::Tensor codebook_scales(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& clip_ratio);
torch::Tensor codebook_codes(const torch::Tensor& w, const torch::Tensor& scale, const WeightQuantSpec& spec);

// The weights codes [O, I] stand for under per-group scales [O, G]: float32 [O, I], d * level in
// fp32 as llama.cpp computes it.
torch::Tensor codebook_values(const torch::Tensor& codes, const torch::Tensor& scale, const WeightQuantSpec& spec);

}  // namespace tessera::quant
