#pragma once
// The few places where libtorch 1.13 (Debian, CPU) and 2.x (the GPU machine) differ.
#include <torch/torch.h>
#include <torch/version.h>

namespace tessera::compat {

// Causal self-attention over [B, H, T, hd] tensors (k and v already expanded to H heads).
// libtorch >= 2.0 has a fused kernel (flash / memory-efficient attention on CUDA); 1.13 does not.
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/true);
#else
  const auto t = q.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)).mul_(scale);
  auto mask = torch::ones({t, t}, torch::TensorOptions().dtype(torch::kBool).device(q.device()))
                  .triu_(1);
  scores.masked_fill_(mask, -std::numeric_limits<float>::infinity());
  // Softmax in fp32 for half-precision inputs, as the reference implementations do.
  auto probs = torch::softmax(scores.to(torch::kFloat32), -1).to(q.scalar_type());
  return torch::matmul(probs, v);
#endif
}

}  // namespace tessera::compat
