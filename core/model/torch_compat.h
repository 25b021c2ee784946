#pragma once
// The few places where libtorch 1.13 (Debian, CPU) and 2.x (the GPU machine) differ.
#include <torch/torch.h>
#include <torch/version.h>

namespace tessera::compat {

// Causal self-attention over [B, H, T, hd] tensors (k and v already expanded to H heads).
// libtorch >= 2.0 has a fused kernel (flash / memory-efficient attention on CUDA); 1.13 does not.
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/true);
#else
  if (q.scalar_type() == torch::kFloat16 && q.device().is_cpu()) {
    return causal_attention(q.to(torch::kFloat32), k.to(torch::kFloat32), v.to(torch::kFloat32)).to(torch::kFloat16);
  }
  const auto t = q.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)).mul_(scale);
  auto mask = torch::ones({t, t}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).triu_(1);
  scores.masked_fill_(mask, -std::numeric_limits<float>::infinity());
  // Softmax in fp32 for half-precision inputs, as the reference implementations do.
  auto probs = torch::softmax(scores.to(torch::kFloat32), -1).to(q.scalar_type());
  return torch::matmul(probs, v);
#endif
}

// x @ w^T (+ b). libtorch 1.13 has no fp16 matrix multiply on the CPU: there the product is
// computed in fp32 and rounded back, which is what a 2.x CPU kernel does internally as well.
inline torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {}) {
#if TORCH_VERSION_MAJOR < 2
  if (x.scalar_type() == torch::kFloat16 && x.device().is_cpu()) {
    auto y = b.defined() ? at::linear(x.to(torch::kFloat32), w.to(torch::kFloat32), b.to(torch::kFloat32))
                         : at::linear(x.to(torch::kFloat32), w.to(torch::kFloat32));
    return y.to(torch::kFloat16);
  }
#endif
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

// SiLU; libtorch 1.13 has no fp16 SiLU kernel on the CPU.
inline torch::Tensor silu(const torch::Tensor& x) {
#if TORCH_VERSION_MAJOR < 2
  if (x.scalar_type() == torch::kFloat16 && x.device().is_cpu())
    return torch::silu(x.to(torch::kFloat32)).to(torch::kFloat16);
#endif
  return torch::silu(x);
}

}  // namespace tessera::compat
