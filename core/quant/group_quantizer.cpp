#include "quant/group_quantizer.h"

#include "util/error.h"

namespace tessera::quant {

std::pair<torch::Tensor, torch::Tensor> group_min_max(const torch::Tensor& w, std::int64_t group_size) {
  const auto rows = w.size(0), cols = w.size(1);
  const auto full = cols / group_size, tail = cols - full * group_size;
  std::vector<torch::Tensor> lo, hi;
  if (full > 0) {
    auto body = w.narrow(1, 0, full * group_size).reshape({rows, full, group_size});
    lo.push_back(std::get<0>(body.min(2)));
    hi.push_back(std::get<0>(body.max(2)));
  }
  if (tail > 0) {  // the ragged last group (e.g. 172 = 5 x 32 + 12)
    auto rest = w.narrow(1, full * group_size, tail);
    lo.push_back(std::get<0>(rest.min(1, true)));
    hi.push_back(std::get<0>(rest.max(1, true)));
  }
  return {torch::cat(lo, 1), torch::cat(hi, 1)};
}

GroupGrid compute_grid(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& clip_ratio) {
  const auto g = spec.effective_group(w.size(1));
  auto [lo, hi] = group_min_max(w.to(torch::kFloat32), g);
  if (clip_ratio.defined()) {
    lo = lo * clip_ratio;
    hi = hi * clip_ratio;
  }
  // The range always contains 0 (as in GPTQ's quantizer). For groups that straddle zero, every
  // LLaMA group in practice, this is exactly tesseraq-method.md 1.1. For a group that does not
  // (all positive, all negative, constant), 1.1's clamp of z to [0, 2^b-1] would put the grid at
  // [0, hi - lo] and saturate most of the group; with 0 included the grid covers the group, the
  // zero point stays in range and every format that stores unsigned zeros can hold it.
  lo = torch::clamp_max(lo, 0.0);
  hi = torch::clamp_min(hi, 0.0);
  GroupGrid grid;
  if (spec.symmetric) {
    const double qmax = std::pow(2.0, spec.bits - 1) - 1.0;
    grid.scale = torch::clamp_min(torch::max(lo.abs(), hi.abs()), 1e-5) / qmax;
    grid.zero = torch::full_like(grid.scale, std::pow(2.0, spec.bits - 1));
  } else {
    const double qmax = std::pow(2.0, spec.bits) - 1.0;
    grid.scale = torch::clamp_min(hi - lo, 1e-5) / qmax;
    grid.zero = torch::clamp(-torch::round(lo / grid.scale), 0.0, qmax);
  }
  return grid;
}

torch::Tensor quantize_to_codes(const torch::Tensor& w, const GroupGrid& grid, const WeightQuantSpec& spec) {
  const auto g = spec.effective_group(w.size(1));
  const auto in = w.size(1);
  const double qmax = std::pow(2.0, spec.bits) - 1.0;
  auto s = expand_groups(grid.scale, g, in), z = expand_groups(grid.zero, g, in);
  return torch::clamp(torch::round(w.to(torch::kFloat32) / s) + z, 0.0, qmax).to(torch::kUInt8);
}

void check_finite(const torch::Tensor& w, const std::string& name) {
  if (!torch::isfinite(w).all().item<bool>())
    throw Error(name + ": weight contains NaN or infinite values; cannot quantize it");
}

QuantizedLinear quantize_rtn(const torch::Tensor& w, const WeightQuantSpec& spec, const std::string& name,
                             const torch::Tensor& clip_ratio) {
  spec.validate();
  if (w.dim() != 2) throw Error(name + ": expected a 2-D weight");
  check_finite(w, name);
  QuantizedLinear q;
  q.spec = spec;
  const auto grid = compute_grid(w, spec, clip_ratio);
  q.scale = grid.scale;
  q.zero = grid.zero;
  q.codes = quantize_to_codes(w, grid, spec);
  return q;
}

torch::Tensor fake_quantize(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& clip_ratio) {
  const auto grid = compute_grid(w, spec, clip_ratio);
  const auto g = spec.effective_group(w.size(1));
  const auto in = w.size(1);
  const double qmax = std::pow(2.0, spec.bits) - 1.0;
  auto s = expand_groups(grid.scale, g, in), z = expand_groups(grid.zero, g, in);
  auto q = torch::clamp(torch::round(w.to(torch::kFloat32) / s) + z, 0.0, qmax);
  return ((q - z) * s).to(w.scalar_type());
}

}  // namespace tessera::quant
