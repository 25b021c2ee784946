#pragma once
// Dynamic per-token asymmetric activation quantization (tesseraq-method.md 1.4): each token vector
// gets its own min/max grid at run time; the backward pass is the identity (straight-through).
#include <torch/torch.h>

namespace tessera::quant {

torch::Tensor fake_quantize_per_token(const torch::Tensor& x, int bits);

}  // namespace tessera::quant
