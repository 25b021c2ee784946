#include "quant/quantized_linear.h"

#include "quant/codebook_grid.h"
#include "quant/group_quantizer.h"

namespace tessera::quant {

torch::Tensor expand_groups(const torch::Tensor& per_group, std::int64_t group_size, std::int64_t in_features) {
  return per_group.repeat_interleave(group_size, 1).narrow(1, 0, in_features);
}

// In place on one fresh tensor, the same arithmetic as (q - z) * s: each fp32 temporary of a
// 7B-shaped gate_proj is 172 MiB, and on the CPU the block cache keeps every one of them.
QuantizedLinear QuantizedLinear::unquantized(const torch::Tensor& w) {
  QuantizedLinear q;
  q.f16_weight = w.detach().to(torch::kFloat16).contiguous();
  return q;
}

torch::Tensor QuantizedLinear::dequantize() const {
  torch::NoGradGuard no_grad;  // codes are integers: nothing here is trained
  if (!quantized()) return f16_weight.to(torch::kFloat32);
  if (spec.nonuniform()) return codebook_values(codes, scale, spec);
  const auto g = spec.effective_group(in_features());
  auto w = codes.to(torch::kFloat32);
  if (spec.superblock_offsets()) {  // q s - dmin m, in llama.cpp's order (k-quants: whole groups)
    w.view({out_features(), -1, g}).mul_(scale.unsqueeze(2)).sub_(group_offsets(scale, zero, spec).unsqueeze(2));
    return w;
  }
  if (in_features() % g == 0) {
    w.view({out_features(), -1, g}).sub_(zero.unsqueeze(2)).mul_(scale.unsqueeze(2));
  } else {
    w.sub_(expand_groups(zero, g, in_features())).mul_(expand_groups(scale, g, in_features()));
  }
  return w;
}

}  // namespace tessera::quant
