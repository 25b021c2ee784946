#include "quant/quantized_linear.h"

namespace tessera::quant {

torch::Tensor expand_groups(const torch::Tensor& per_group, std::int64_t group_size, std::int64_t in_features) {
  return per_group.repeat_interleave(group_size, 1).narrow(1, 0, in_features);
}

torch::Tensor QuantizedLinear::dequantize() const {
  const auto g = spec.effective_group(in_features());
  return (codes.to(torch::kFloat32) - expand_groups(zero, g, in_features())) * expand_groups(scale, g, in_features());
}

}  // namespace tessera::quant
