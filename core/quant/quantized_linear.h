#pragma once
// A quantized Linear weight as integers: codes q in [0, 2^b - 1] (uint8, [out, in]), and per
// (row, group) scale s and zero point z (fp32, [out, groups], z integer-valued), so that the
// weight is (q - z) * s; for GGUF's k-quants with mins z is fractional and the weight is
// q * s - offset (quant/group_quantizer.h group_offsets); on IQ4_NL levels z is 0 and the weight
// is s * level[q] (quant/codebook_grid.h). Codes are the source of truth:
// evaluation and export dequantize them, and nothing ever re-derives them from float weights.
#include <torch/torch.h>

#include "quant/quant_spec.h"

namespace tessera::quant {

struct QuantizedLinear {
  torch::Tensor codes;  // uint8 [O, I]
  torch::Tensor scale;  // float32 [O, G]
  torch::Tensor zero;   // float32 [O, G]
  WeightQuantSpec spec;
  // A Linear left unquantized (a GGUF k-quant target's last fallback, F16; quant/grid_target.h):
  // its weight rounded to fp16 [O, I], and no codes, scales or zero points.
  torch::Tensor f16_weight;

  static QuantizedLinear unquantized(const torch::Tensor& w);  // w rounded to fp16
  bool quantized() const { return !f16_weight.defined(); }
  std::int64_t out_features() const { return quantized() ? codes.size(0) : f16_weight.size(0); }
  std::int64_t in_features() const { return quantized() ? codes.size(1) : f16_weight.size(1); }
  torch::Tensor dequantize() const;  // float32 [O, I] on the codes' device
};

// Broadcasts per-group values [O, G] to per-column values [O, I] (the last group may be ragged).
torch::Tensor expand_groups(const torch::Tensor& per_group, std::int64_t group_size, std::int64_t in_features);

}  // namespace tessera::quant
