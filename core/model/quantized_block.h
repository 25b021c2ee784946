#pragma once
// The result of quantizing one decoder block: integer codes for its 7 Linears plus the float
// tensors a method changed on the way (AWQ rescales the norms and the v/up rows before quantizing),
// and method state (AWQ scales and clip ratios) for later methods to start from. Saved per block as
// safetensors in the run directory.
#include <torch/torch.h>

#include <map>
#include <string>

#include "model/llama_model.h"
#include "quant/quantized_linear.h"

namespace tessera::model {

struct QuantizedBlock {
  std::map<model::LinearKind, quant::QuantizedLinear> linears;
  torch::Tensor input_norm, post_attention_norm;      // float32, possibly rescaled by the method
  torch::Tensor q_bias, k_bias, v_bias;               // float32 or undefined
  std::map<std::string, torch::Tensor> method_state;  // e.g. "awq.scale.qkv", "awq.clip.o_proj"
  // The float weights the codes quantize (after the method's function-preserving transforms,
  // before clipping); used for per-layer statistics, not saved.
  model::DecoderBlockWeights float_reference;

  // Takes the float parts of `w` (norms and biases as float32) and records `w` as the reference.
  void set_float_parts(const model::DecoderBlockWeights& w);

  // The block's weights as the quantized model uses them: dequantized codes in `dtype`.
  model::DecoderBlockWeights dequantized(torch::Device device, torch::ScalarType dtype) const;

  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const;  // atomic
  // `spec`: the run's weight spec; each Linear gets its own grid from it (quant::linear_grid).
  static QuantizedBlock load(const std::string& path, const quant::WeightQuantSpec& spec);
};

}  // namespace tessera::model
