#include "quant/lwc_quantizer.h"

#include <cmath>

namespace tessera::quant {

GroupGrid lwc_grid(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& gamma,
                   const torch::Tensor& beta) {
  const auto g = spec.effective_group(w.size(1));
  // Differentiable bounds: with LET the weights depend on the smoothing scales, and (as in [OQ])
  // those get gradient through the group min/max as well.
  auto bounds = group_min_max(w.to(torch::kFloat32), g);
  auto lo = torch::clamp_max(bounds.first, 0.0);
  auto hi = torch::clamp_min(bounds.second, 0.0);
  auto hi_c = torch::sigmoid(gamma) * hi;
  auto lo_c = torch::sigmoid(beta) * lo;
  GroupGrid grid;
  if (spec.symmetric) {
    const double qmax = std::pow(2.0, spec.bits - 1) - 1.0;
    grid.scale = representable_scales(torch::clamp(torch::max(lo_c.abs(), hi_c.abs()), 1e-5, 1e4) / qmax, spec);
    grid.zero = torch::full_like(hi.detach(), std::pow(2.0, spec.bits - 1));
  } else {
    const double qmax = std::pow(2.0, spec.bits) - 1.0;
    grid.scale = representable_scales(torch::clamp(hi_c - lo_c, 1e-5, 1e4) / qmax, spec);
    grid.zero = asymmetric_zero(lo_c, grid.scale, spec);
  }
  return grid;
}

torch::Tensor lwc_fake_quantize(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& gamma,
                                const torch::Tensor& beta) {
  const auto grid = lwc_grid(w, spec, gamma, beta);
  const double qmax = std::pow(2.0, spec.bits) - 1.0;
  auto wg = grouped(w.to(torch::kFloat32), spec.effective_group(w.size(1)));
  auto s = grid.scale.unsqueeze(2), z = grid.zero.unsqueeze(2);
  // A fractional zero point (k-quant offsets) is added before rounding, as quantize_to_codes does;
  // (q - z) s is then the weight up to the rounding of the offset onto its lattice.
  auto x = spec.superblock_offsets() ? wg / s + z : wg / s;
  auto rounded = x + (torch::round(x) - x).detach();  // round with a straight-through gradient
  auto q = torch::clamp(spec.superblock_offsets() ? rounded : rounded + z, 0.0, qmax);
  return ungrouped((q - z) * s, w.size(1));
}

QuantizedLinear lwc_quantize(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& gamma,
                             const torch::Tensor& beta) {
  torch::NoGradGuard no_grad;
  const auto grid = lwc_grid(w, spec, gamma.detach(), beta.detach());
  QuantizedLinear q;
  q.spec = spec;
  q.scale = grid.scale;
  q.zero = grid.zero;
  q.codes = quantize_to_codes(w, grid, spec);
  return q;
}

}  // namespace tessera::quant
