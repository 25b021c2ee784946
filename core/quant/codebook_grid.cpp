#include "quant/codebook_grid.h"

#include <limits>

#include "quant/group_quantizer.h"
#include "util/error.h"

namespace tessera::quant {
namespace {

void check_levels(const WeightQuantSpec& spec) {
  if (spec.levels != Levels::Iq4Nl) throw Error("a codebook grid was asked for a uniform spec (" + spec.label() + ")");
}

torch::Tensor level_table(const torch::Device& device) {
  return torch::tensor(std::vector<float>(kIq4NlLevels.begin(), kIq4NlLevels.end()),
                       torch::TensorOptions().dtype(torch::kFloat32).device(device));
}

// The index of the level nearest to x, ties to the upper one (ggml's best_index_int8): bucketize
// over the midpoints, which are exact half-integers in fp32.
torch::Tensor nearest_level(const torch::Tensor& x, const torch::Tensor& levels) {
  const auto midpoints = (levels.narrow(0, 0, levels.size(0) - 1) + levels.narrow(0, 1, levels.size(0) - 1)) / 2;
  return torch::bucketize(x, midpoints, /*out_int32=*/false, /*right=*/true);
}

}  // namespace

torch::Tensor codebook_scales(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& clip_ratio) {
  check_levels(spec);
  torch::NoGradGuard no_grad;
  auto x = grouped(w.to(torch::kFloat32), spec.effective_group(w.size(1)));
  if (clip_ratio.defined()) {
    const auto lo = torch::clamp_max(std::get<0>(x.min(2, true)), 0.0) * clip_ratio.unsqueeze(2);
    const auto hi = torch::clamp_min(std::get<0>(x.max(2, true)), 0.0) * clip_ratio.unsqueeze(2);
    x = torch::max(torch::min(x, hi), lo);
  }
  const auto levels = level_table(x.device());
  const auto weight = x * x;
  // The signed value of the largest magnitude; a group below ggml's GROUP_MAX_EPS gets d = 0.
  const auto top = x.gather(2, x.abs().argmax(2, /*keepdim=*/true));
  const auto empty = top.abs() < 1e-15;
  const auto safe_top = torch::where(empty, torch::ones_like(top), top);
  const double lowest = kIq4NlLevels.front();
  // ggml's candidates (ntry = 7): 1/d = -lowest / max, then (t + lowest) / max for t in -7..7.
  std::vector<double> numerators = {-lowest};
  for (int t = -7; t <= 7; ++t) numerators.push_back(t + lowest);
  auto best_d = torch::zeros_like(top);
  auto best_score = torch::full_like(top, -std::numeric_limits<float>::infinity());
  for (const double numerator : numerators) {
    const auto q = levels.index({nearest_level(x * (numerator / safe_top), levels)});
    const auto sumqx = (weight * q * x).sum(2, true), sumq2 = (weight * q * q).sum(2, true);
    const auto d = sumqx / torch::clamp_min(sumq2, std::numeric_limits<float>::min());
    const auto score = d * sumqx;
    const auto better = (sumq2 > 0).logical_and(score > best_score);
    best_d = torch::where(better, d, best_d);
    best_score = torch::where(better, score, best_score);
  }
  best_d = torch::where(empty, torch::zeros_like(best_d), best_d).squeeze(2);
  return representable_scales(best_d, spec);  // fp16 (spec.scale_bits = 11)
}

torch::Tensor codebook_codes(const torch::Tensor& w, const torch::Tensor& scale, const WeightQuantSpec& spec) {
  check_levels(spec);
  torch::NoGradGuard no_grad;
  const auto x = grouped(w.to(torch::kFloat32), spec.effective_group(w.size(1)));
  const auto s = scale.unsqueeze(2);
  const auto inverse = torch::where(s == 0, torch::zeros_like(s), 1.0 / s);
  const auto codes = nearest_level(x * inverse, level_table(x.device()));
  return ungrouped(codes, w.size(1)).to(torch::kUInt8);
}

torch::Tensor codebook_values(const torch::Tensor& codes, const torch::Tensor& scale, const WeightQuantSpec& spec) {
  check_levels(spec);
  torch::NoGradGuard no_grad;
  const auto values = level_table(codes.device()).index({codes.to(torch::kLong)});
  return values.mul_(expand_groups(scale, spec.effective_group(codes.size(1)), codes.size(1)));
}

}  // namespace tessera::quant
