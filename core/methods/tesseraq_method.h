#pragma once
// TesseraQ (tesseraq-method.md section 4): after an init (AWQ scales + LLMC v1 clip on the
// quantized-chain features, or none) the grid (s, z) of every group is frozen; one rounding
// variable nu per weight (h = rsig(nu) = clamp(1.2 sigmoid(nu) - 0.1, 0, 1), initialised to
// frac(W/s)) and one dequantization-scale variable v per group (delta = 2 rsig(v), v = 0) are
// trained by Progressive Adaptive Rounding: for each soft fraction t of the schedule, harden all
// but t of each Linear's elements (largest |h - 0.5| first), then a fresh Adam minimises the
// per-token squared L2 error of the block output against the FP targets. Final codes
// clamp(floor(W/s) + 1[nu > 0] + z), scale s * delta, zero z.
//
// Numerics: CPU/GPU fp32 throughout (no autocast or GradScaler; see 4.11 and 8.2 for the
// official fp16 autocast). Hard elements are a boolean mask plus their fixed rounding instead of
// nu = +-inf (8.2).
#include <random>
#include <vector>

#include "pipeline/block_method.h"

namespace tessera::methods {

// The rectified sigmoid rsig(x) = clamp(1.2 sigmoid(x) - 0.1, 0, 1) and its inverse on [0, 1].
torch::Tensor rectified_sigmoid(const torch::Tensor& x);
torch::Tensor rectified_sigmoid_inverse(const torch::Tensor& y);

// TesseraQ state of one Linear, all [O, I] except the per-group tensors [O, G].
struct TesseraqLinear {
  quant::WeightQuantSpec spec;
  std::int64_t group = 0;     // effective group size
  torch::Tensor scale, zero;  // frozen grid, [O, G]
  torch::Tensor scale_cols, zero_cols;  // the grid expanded to [O, I]
  torch::Tensor floor_codes;  // floor(W / s), float
  torch::Tensor frac;         // W / s - floor(W / s), in [0, 1)
  torch::Tensor nu;           // rounding variables (requires grad)
  torch::Tensor v;            // DST variables [O, G] (requires grad)
  torch::Tensor hard;         // bool: element hardened
  torch::Tensor hard_value;   // float 0/1: the rounding of hard elements

  // Builds the frozen grid from w (already clipped by the init) and h = frac(W/s).
  static TesseraqLinear init(const torch::Tensor& w, const quant::WeightQuantSpec& spec);
  torch::Tensor rounding() const;     // h: hard_value where hard, else rsig(nu) (differentiable)
  torch::Tensor soft_codes() const;   // clamp(floor + h + z, 0, qmax)
  torch::Tensor dst_factor() const;   // delta = 2 rsig(v), [O, G]
  torch::Tensor soft_weight() const;  // (soft code - z) * s * delta, [O, I] (differentiable)
  // PAR harden phase: the quantile (numpy linear interpolation, pos = t (N - 1)) of the score
  // |h - 0.5| (0.5 for hard elements) over the whole Linear, then every element with score > tau
  // becomes hard with rounding 1[h > 0.5]. Returns tau.
  double harden(double soft_fraction);
  double hard_fraction() const;
  // Final integer codes clamp(floor + 1[nu > 0] + z) (hard elements: their fixed rounding), uint8.
  torch::Tensor final_codes() const;
  quant::QuantizedLinear finalize() const;
};

class TesseraqMethod : public pipeline::BlockMethod {
 public:
  std::string name() const override { return "tesseraq"; }
  pipeline::QuantizedBlock quantize_block(model::DecoderBlockWeights weights,
                                          const pipeline::BlockContext& ctx) override;
};

}  // namespace tessera::methods
