#pragma once
// TesseraQ's soft weight as one autograd function (tesseraq-method.md 8.2):
//   W = s * delta * (clamp(B + h + z, 0, qmax) - z),  h = rsig(nu) for soft elements, the fixed
//   rounding for hard ones, delta = 2 rsig(v) per group.
// The composed libtorch expression keeps every intermediate of the [O, I] chain (sigmoid, clamp
// masks, products: about eight weight-sized tensors per Linear) alive until the backward pass.
// This function saves nothing but its inputs and recomputes the few element-wise terms in
// backward, so a block's autograd state is its parameters. The output may be produced directly
// in the compute dtype (bf16 on the GPU); gradients are computed in fp32.
#include <torch/torch.h>

namespace tessera::methods {

struct SoftWeightConstants {
  torch::Tensor floor_codes;        // B = floor(W / s), [O, I] float32
  torch::Tensor scale_cols;         // s expanded to [O, I]
  torch::Tensor zero_cols;          // z expanded to [O, I]
  torch::Tensor hard, hard_value;   // bool mask and float 0/1 rounding of hard elements
  std::int64_t group = 0;           // group size (columns per v entry)
  double qmax = 3;
  torch::ScalarType out_dtype = torch::kFloat32;
};

// Differentiable w.r.t. nu [O, I] and v [O, G].
// The rectified sigmoid rsig(x) = clamp(1.2 sigmoid(x) - 0.1, 0, 1).
torch::Tensor rectified_sigmoid(const torch::Tensor& x);

torch::Tensor fused_soft_weight(const torch::Tensor& nu, const torch::Tensor& v, const SoftWeightConstants& constants);

}  // namespace tessera::methods
