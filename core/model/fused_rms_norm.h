#pragma once
// RMSNorm through the fused CUDA kernels (kernels/rms_norm_kernels.h), as an autograd function, where
// they serve: CUDA tensors x [..., D] and weight [D] of one type (fp32, bf16 or fp16) in a build with
// TESSERA_CUDA_KERNELS. Elsewhere it returns nothing and the caller uses libtorch ops.
#include <torch/torch.h>

#include <optional>

namespace tessera::model {

std::optional<torch::Tensor> fused_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

}  // namespace tessera::model
