#pragma once
// OmniQuant's learnable weight clipping (LWC, arXiv 2308.13137; quantize/quantizer.py): two logits
// per group, gamma (upper) and beta (lower), shrink the group's bounds to sigmoid(gamma) hi and
// sigmoid(beta) lo; the weights themselves are not changed, values outside the shrunk range are
// clipped by the code clamp. Gradients reach the logits through the scale only (round with a
// straight-through estimator; the zero point is rounded without gradient, as in [OQ]).
//
// As everywhere in Tessera, lo and hi first include 0 (see group_quantizer.cpp); for groups that
// straddle zero, i.e. every LLaMA group in practice, this is exactly OmniQuant's quantizer.
#include <torch/torch.h>

#include "quant/group_quantizer.h"

namespace tessera::quant {

inline constexpr double kLwcInitLogit = 4.0;  // sigmoid(4) = 0.982, [OQ]'s init

// The grid of w [O, I] for logits gamma, beta [O, G]; differentiable w.r.t. the logits (and w)
// through the scale (the zero point carries no gradient).
GroupGrid lwc_grid(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& gamma,
                   const torch::Tensor& beta);

// (clamp(round_ste(w / s) + z, 0, qmax) - z) * s on the LWC grid; differentiable w.r.t. gamma,
// beta (and w). Returns [O, I] float32.
torch::Tensor lwc_fake_quantize(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& gamma,
                                const torch::Tensor& beta);

// Integer codes of w on the LWC grid (no gradient).
QuantizedLinear lwc_quantize(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& gamma,
                             const torch::Tensor& beta);

}  // namespace tessera::quant
