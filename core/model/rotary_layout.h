#pragma once
// The two row orders of q_proj/k_proj weights. llama.2c and ggml/llama.cpp apply RoPE to
// interleaved pairs (x0,x1),(x2,x3)...; Hugging Face's rotate_half pairs x_i with x_{i+hd/2}.
// Permuting the rows of wq/wk per head makes both compute the same function (transformers'
// convert_llama_weights_to_hf.py one way, llama.cpp's convert_hf_to_gguf.py permute() the other).
// Only output rows move, so per-row quantization groups along the input survive unchanged.
#include <torch/torch.h>

namespace tessera::model {

inline torch::Tensor interleaved_to_half_rotary(const torch::Tensor& w, std::int64_t heads) {
  const auto rows = w.size(0), cols = w.size(1);
  return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

inline torch::Tensor half_to_interleaved_rotary(const torch::Tensor& w, std::int64_t heads) {
  const auto rows = w.size(0), cols = w.size(1);
  return w.reshape({heads, 2, rows / heads / 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

}  // namespace tessera::model
