#include "quant/group_quantizer.h"

#include "quant/codebook_grid.h"
#include "runtime/finite_check.h"
#include "util/error.h"

namespace tessera::quant {

// A ragged last group (e.g. 172 = 5 x 32 + 12) is padded by repeating the row's last element,
// which leaves that group's min and max unchanged; callers drop the padding with ungrouped().
torch::Tensor grouped(const torch::Tensor& w, std::int64_t group_size) {
  const auto rows = w.size(0), cols = w.size(1);
  const auto groups = (cols + group_size - 1) / group_size;
  const auto pad = groups * group_size - cols;
  auto full = pad == 0 ? w : torch::cat({w, w.narrow(1, cols - 1, 1).expand({rows, pad})}, 1);
  return full.reshape({rows, groups, group_size});
}

torch::Tensor ungrouped(const torch::Tensor& g, std::int64_t cols) {
  return g.reshape({g.size(0), -1}).narrow(1, 0, cols);
}

std::pair<torch::Tensor, torch::Tensor> group_min_max(const torch::Tensor& w, std::int64_t group_size) {
  auto g = grouped(w, group_size);
  return {std::get<0>(g.min(2)), std::get<0>(g.max(2))};
}

namespace {

// x rounded (to nearest, ties to even) to a value of at most `bits` significant bits and no finer
// than fp16's subnormal spacing 2^-24. x = m 2^e with m in [0.5, 1): a p-bit significand has
// spacing 2^(e - p). Dividing and multiplying by powers of two is exact, so only the round rounds.
torch::Tensor round_significant_bits(const torch::Tensor& x, int bits) {
  const auto e = std::get<1>(torch::frexp(x)).to(torch::kFloat32);
  const auto spacing = torch::exp2(torch::clamp_min(e - static_cast<double>(bits), -24.0));
  return torch::round(x / spacing) * spacing;
}

void check_fp16_range(const torch::Tensor& rounded, const torch::Tensor& x) {
  if ((rounded.abs() > 65504.0).any().item<bool>())
    throw Error("a quantization scale of " + std::to_string(x.abs().max().item<double>()) +
                " is beyond fp16's range (65504), which the chosen GGUF target stores");
}

// GGUF k-quant scales and mins: per row and super-block of groups, d = fp16(max x / n) (at least
// 2^-24) and x = d clamp(round(x / d), lowest, n), lowest 1 for scales and 0 for mins. The largest
// value keeps k = n (x / fp16(x / n) is within n 2^-11 of n), so the export finds d again as
// max x / n, and the rounding is idempotent.
torch::Tensor superblock_values(const torch::Tensor& x, std::int64_t groups_per_block, int levels, double lowest) {
  if (x.dim() != 2 || x.size(1) % groups_per_block != 0)
    throw Error("GGUF k-quant grids need rows of whole " + std::to_string(WeightQuantSpec::kSuperBlockColumns) +
                "-column super-blocks; a weight has " + std::to_string(x.size(-1)) + " groups, not a multiple of " +
                std::to_string(groups_per_block));
  const auto blocks = x.reshape({x.size(0), -1, groups_per_block});
  const auto top = std::get<0>(blocks.max(2, /*keepdim=*/true));
  const auto d = torch::clamp_min(round_significant_bits(top / static_cast<double>(levels), 11), std::pow(2.0, -24));
  check_fp16_range(d, x);
  return (d * torch::clamp(torch::round(blocks / d), lowest, static_cast<double>(levels))).reshape(x.sizes());
}

std::int64_t groups_per_superblock(const WeightQuantSpec& spec) {
  return WeightQuantSpec::kSuperBlockColumns / spec.group_size;
}

}  // namespace

torch::Tensor representable_scales(const torch::Tensor& s, const WeightQuantSpec& spec) {
  if (spec.scale_bits <= 0 && spec.superblock_levels <= 0) return s;
  torch::Tensor rounded;
  {
    torch::NoGradGuard no_grad;
    const auto x = s.detach().to(torch::kFloat32);
    if (spec.superblock_levels > 0) {
      rounded = superblock_values(x, groups_per_superblock(spec), spec.superblock_levels, 1.0);
    } else {
      rounded = round_significant_bits(x, spec.scale_bits);
      check_fp16_range(rounded, x);
    }
  }
  return s + (rounded.to(s.scalar_type()) - s).detach();
}

torch::Tensor representable_offsets(const torch::Tensor& offset, const WeightQuantSpec& spec) {
  torch::NoGradGuard no_grad;
  return superblock_values(torch::clamp_min(offset.to(torch::kFloat32), 0.0), groups_per_superblock(spec),
                           spec.superblock_levels, 0.0);
}

torch::Tensor group_offsets(const torch::Tensor& scale, const torch::Tensor& zero, const WeightQuantSpec& spec) {
  return representable_offsets(zero * scale, spec);
}

torch::Tensor asymmetric_zero(const torch::Tensor& lo, const torch::Tensor& scale, const WeightQuantSpec& spec) {
  if (spec.superblock_offsets()) return representable_offsets(-lo.detach(), spec) / scale.detach();
  return torch::clamp(-torch::round(lo.detach() / scale.detach()), 0.0, std::pow(2.0, spec.bits) - 1.0);
}

GroupGrid compute_grid(const torch::Tensor& w, const WeightQuantSpec& spec, const torch::Tensor& clip_ratio) {
  if (spec.nonuniform()) {
    const auto scale = codebook_scales(w, spec, clip_ratio);
    return {scale, torch::zeros_like(scale)};
  }
  const auto g = spec.effective_group(w.size(1));
  auto [lo, hi] = group_min_max(w.to(torch::kFloat32), g);
  if (clip_ratio.defined()) {
    lo = lo * clip_ratio;
    hi = hi * clip_ratio;
  }
  // The range always contains 0 (as in GPTQ's quantizer). For groups that straddle zero, every
  // LLaMA group in practice, this is exactly the min/max quantizer of AWQ, OmniQuant and TesseraQ
  // (LLMC's IntegerQuantizer). Deviation from it for a group that does not (all positive, all
  // negative, constant): its clamp of z to [0, 2^b-1] would put the grid at
  // [0, hi - lo] and saturate most of the group; with 0 included the grid covers the group, the
  // zero point stays in range and every format that stores unsigned zeros can hold it.
  lo = torch::clamp_max(lo, 0.0);
  hi = torch::clamp_min(hi, 0.0);
  GroupGrid grid;
  if (spec.symmetric) {
    const double qmax = std::pow(2.0, spec.bits - 1) - 1.0;
    grid.scale = representable_scales(torch::clamp_min(torch::max(lo.abs(), hi.abs()), 1e-5) / qmax, spec);
    grid.zero = torch::full_like(grid.scale, std::pow(2.0, spec.bits - 1));
  } else {
    const double qmax = std::pow(2.0, spec.bits) - 1.0;
    grid.scale = representable_scales(torch::clamp_min(hi - lo, 1e-5) / qmax, spec);
    grid.zero = asymmetric_zero(lo, grid.scale, spec);
  }
  return grid;
}

torch::Tensor quantize_to_codes(const torch::Tensor& w, const GroupGrid& grid, const WeightQuantSpec& spec) {
  if (spec.nonuniform()) return codebook_codes(w, grid.scale, spec);
  const double qmax = std::pow(2.0, spec.bits) - 1.0;
  torch::NoGradGuard no_grad;  // codes are integers
  auto wg = grouped(w.to(torch::kFloat32), spec.effective_group(w.size(1)));
  // One temporary, rounded in place (a weight-sized fp32 tensor per step otherwise). A fractional
  // zero point (k-quant offsets) is added before rounding; an integer one after, as the reference
  // quantizers do (the same codes up to ties).
  auto q = wg / grid.scale.unsqueeze(2);
  if (spec.superblock_offsets())
    q.add_(grid.zero.unsqueeze(2)).round_().clamp_(0.0, qmax);
  else
    q.round_().add_(grid.zero.unsqueeze(2)).clamp_(0.0, qmax);
  return ungrouped(q, w.size(1)).to(torch::kUInt8);
}

void check_finite(const torch::Tensor& w, const std::string& name) {
  if (!runtime::all_finite(w)) throw Error(name + ": weight contains NaN or infinite values; cannot quantize it");
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
  if (spec.nonuniform()) {  // no gradient through the levels: straight through, like an F16 Linear
    const auto wq = codebook_values(quantize_to_codes(w, grid, spec), grid.scale, spec).to(w.scalar_type());
    return wq + (w - w.detach());  // exactly wq, with w's gradient
  }
  const double qmax = std::pow(2.0, spec.bits) - 1.0;
  auto wg = grouped(w.to(torch::kFloat32), spec.effective_group(w.size(1)));
  auto s = grid.scale.unsqueeze(2), z = grid.zero.unsqueeze(2);
  if (spec.superblock_offsets()) {
    const auto q = torch::clamp(torch::round(wg / s + z), 0.0, qmax);
    const auto offset = group_offsets(grid.scale, grid.zero, spec).unsqueeze(2);
    return ungrouped(q * s - offset, w.size(1)).to(w.scalar_type());
  }
  auto q = torch::clamp(torch::round(wg / s) + z, 0.0, qmax);
  return ungrouped((q - z) * s, w.size(1)).to(w.scalar_type());
}

}  // namespace tessera::quant

namespace tessera::quant {

QuantizedLinear quantize_linear_rtn(const torch::Tensor& w, const WeightQuantSpec& run_spec, const std::string& name,
                                    const torch::Tensor& clip_ratio) {
  const auto g = linear_grid(run_spec, w.size(1));
  if (!g.quantized) {
    check_finite(w, name);
    return QuantizedLinear::unquantized(w);
  }
  return quantize_rtn(w, g.spec, name, clip_ratio);
}

torch::Tensor fake_quantize_linear(const torch::Tensor& w, const WeightQuantSpec& run_spec,
                                   const torch::Tensor& clip_ratio) {
  const auto g = linear_grid(run_spec, w.size(1));
  if (!g.quantized) return w + (w.to(torch::kFloat16).to(w.scalar_type()) - w).detach();
  return fake_quantize(w, g.spec, clip_ratio);
}

}  // namespace tessera::quant
