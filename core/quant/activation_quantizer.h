#pragma once
// Dynamic per-token asymmetric activation quantization (TesseraQ's weight-activation settings,
// arXiv 2410.19103; the official W4A4 config's per_token, ste_all): each token vector gets its own
// min/max grid at run time; the backward pass is the identity (straight-through).
#include <torch/torch.h>

namespace tessera::quant {

torch::Tensor fake_quantize_per_token(const torch::Tensor& x, int bits);

}  // namespace tessera::quant
