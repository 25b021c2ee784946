#include "model/llama_model.h"

#include <cmath>

#include "model/fused_rms_norm.h"
#include "model/torch_compat.h"
#include "quant/activation_quantizer.h"
#include "util/error.h"

namespace tessera::model {

const char* linear_name(LinearKind kind) {
  switch (kind) {
    case LinearKind::Q:
      return "q_proj";
    case LinearKind::K:
      return "k_proj";
    case LinearKind::V:
      return "v_proj";
    case LinearKind::O:
      return "o_proj";
    case LinearKind::Gate:
      return "gate_proj";
    case LinearKind::Up:
      return "up_proj";
    case LinearKind::Down:
      return "down_proj";
  }
  return "?";
}

torch::Tensor& DecoderBlockWeights::linear(LinearKind kind) {
  switch (kind) {
    case LinearKind::Q:
      return q_proj;
    case LinearKind::K:
      return k_proj;
    case LinearKind::V:
      return v_proj;
    case LinearKind::O:
      return o_proj;
    case LinearKind::Gate:
      return gate_proj;
    case LinearKind::Up:
      return up_proj;
    case LinearKind::Down:
      return down_proj;
  }
  throw Error("unknown linear kind");
}

const torch::Tensor& DecoderBlockWeights::linear(LinearKind kind) const {
  return const_cast<DecoderBlockWeights*>(this)->linear(kind);
}

std::vector<torch::Tensor*> DecoderBlockWeights::all_tensors() {
  return {&input_norm, &post_attention_norm, &q_proj,  &k_proj,   &v_proj, &o_proj, &q_bias, &k_bias,
          &v_bias,     &gate_proj,           &up_proj, &down_proj};
}

torch::Tensor rope_inverse_frequencies(const LlamaConfig& config) {
  const auto half = config.head_dim / 2;
  auto exponents = torch::arange(0, half, torch::kFloat64) * 2.0 / static_cast<double>(config.head_dim);
  auto inv_freq = 1.0 / torch::pow(config.rope_theta, exponents);
  const auto& s = config.rope_scaling;
  if (s.type == "linear") {
    inv_freq = inv_freq / s.factor;
  } else if (s.type == "llama3") {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between
    // interpolated smoothly (transformers' _compute_llama3_parameters).
    const double old_len = static_cast<double>(s.original_max_position);
    const double low_freq_wavelen = old_len / s.low_freq_factor;
    const double high_freq_wavelen = old_len / s.high_freq_factor;
    auto wavelen = 2.0 * M_PI / inv_freq;
    auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
    auto smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    auto smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
    auto is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
    inv_freq = torch::where(is_medium, smoothed, scaled);
  }
  return inv_freq.to(torch::kFloat32);
}

RopeTables make_rope_tables(const LlamaConfig& config, std::int64_t seq_len, torch::Device device,
                            torch::ScalarType dtype) {
  auto inv_freq = rope_inverse_frequencies(config).to(device);
  auto positions = torch::arange(seq_len, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  auto freqs = torch::outer(positions, inv_freq);
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto x32 = x.to(torch::kFloat32);
  auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, true) + eps);
  return weight * normed.to(x.scalar_type());
}

namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
  const auto half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

torch::Tensor apply_rope(const torch::Tensor& x, const RopeTables& rope) {
  // x: [B, H, T, hd]; tables [T, hd] broadcast over batch and heads.
  const auto t = x.size(2);
  auto cos = rope.cos.narrow(0, 0, t);
  auto sin = rope.sin.narrow(0, 0, t);
  return x * cos + rotate_half(x) * sin;
}

torch::Tensor quantize_input(const torch::Tensor& x, const BlockForwardOptions& options) {
  return options.activation_bits > 0 ? quant::fake_quantize_per_token(x, options.activation_bits) : x;
}

torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {}) {
  return compat::linear(x, w, b);
}

}  // namespace

torch::Tensor attention_forward(const LlamaConfig& c, const DecoderBlockWeights& w, const torch::Tensor& h_in,
                                const RopeTables& rope, const BlockForwardOptions& options) {
  const auto batch = h_in.size(0), t = h_in.size(1);
  if (rope.cos.size(0) < t)
    throw Error("rope tables cover " + std::to_string(rope.cos.size(0)) + " positions, input has " + std::to_string(t));
  const auto* observer = options.observer;
  auto h = quantize_input(h_in, options);
  if (observer) {
    (*observer)(LinearKind::Q, h);
    (*observer)(LinearKind::K, h);
    (*observer)(LinearKind::V, h);
  }
  auto q = project(h, w.q_proj, w.q_bias).view({batch, t, c.num_heads, c.head_dim}).transpose(1, 2);
  auto k = project(h, w.k_proj, w.k_bias).view({batch, t, c.num_kv_heads, c.head_dim}).transpose(1, 2);
  auto v = project(h, w.v_proj, w.v_bias).view({batch, t, c.num_kv_heads, c.head_dim}).transpose(1, 2);
  q = apply_rope(q, rope);
  k = apply_rope(k, rope);
  if (c.num_kv_heads != c.num_heads) {
    const auto groups = c.num_heads / c.num_kv_heads;
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  auto attn = compat::causal_attention(q, k, v);
  attn = quantize_input(attn.transpose(1, 2).reshape({batch, t, c.num_heads * c.head_dim}), options);
  if (observer) (*observer)(LinearKind::O, attn);
  return project(attn, w.o_proj);
}

torch::Tensor mlp_forward(const DecoderBlockWeights& w, const torch::Tensor& m_in, const BlockForwardOptions& options) {
  const auto* observer = options.observer;
  auto m = quantize_input(m_in, options);
  if (observer) {
    (*observer)(LinearKind::Gate, m);
    (*observer)(LinearKind::Up, m);
  }
  auto act = quantize_input(compat::silu(project(m, w.gate_proj)) * project(m, w.up_proj), options);
  if (observer) (*observer)(LinearKind::Down, act);
  return project(act, w.down_proj);
}

torch::Tensor decoder_block_forward(const LlamaConfig& c, const DecoderBlockWeights& w, const torch::Tensor& x,
                                    const RopeTables& rope, const BlockForwardOptions& options) {
  auto norm = [&](const torch::Tensor& in, const torch::Tensor& weight) {
    if (options.fused_kernels)
      if (auto fused = fused_rms_norm(in, weight, c.rms_norm_eps)) return *fused;
    return rms_norm(in, weight, c.rms_norm_eps);
  };
  auto hidden = x + attention_forward(c, w, norm(x, w.input_norm), rope, options);
  return hidden + mlp_forward(w, norm(hidden, w.post_attention_norm), options);
}

torch::Tensor decoder_block_forward(const LlamaConfig& c, const DecoderBlockWeights& w, const torch::Tensor& x,
                                    const RopeTables& rope, const LinearInputObserver* observer) {
  BlockForwardOptions options;
  options.observer = observer;
  return decoder_block_forward(c, w, x, rope, options);
}

LlamaModel::LlamaModel(LlamaConfig config, ModelWeights weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
  if (static_cast<std::int64_t>(weights_.blocks.size()) != config_.num_layers)
    throw Error("model has " + std::to_string(weights_.blocks.size()) + " blocks, config says " +
                std::to_string(config_.num_layers));
}

void LlamaModel::to(torch::Device device, torch::ScalarType dtype) {
  auto move = [&](torch::Tensor& t) {
    if (t.defined()) t = t.to(device, dtype);
  };
  move(weights_.embed_tokens);
  move(weights_.final_norm);
  move(weights_.lm_head);
  for (auto& b : weights_.blocks)
    for (auto* t : b.all_tensors()) move(*t);
}

torch::Tensor LlamaModel::embed(const torch::Tensor& token_ids) const {
  return torch::embedding(weights_.embed_tokens, token_ids.to(device()));
}

torch::Tensor LlamaModel::block_forward(std::int64_t index, const torch::Tensor& x, const RopeTables& rope,
                                        const LinearInputObserver* observer) const {
  BlockForwardOptions options;
  options.observer = observer;
  options.activation_bits = activation_bits_;
  return decoder_block_forward(config_, weights_.blocks.at(static_cast<std::size_t>(index)), x, rope, options);
}

const torch::Tensor& LlamaModel::output_embedding() const {
  return weights_.lm_head.defined() ? weights_.lm_head : weights_.embed_tokens;
}

torch::Tensor LlamaModel::logits(const torch::Tensor& hidden) const {
  return compat::linear(rms_norm(hidden, weights_.final_norm, config_.rms_norm_eps), output_embedding());
}

RopeTables LlamaModel::rope(std::int64_t seq_len) const {
  return make_rope_tables(config_, seq_len, device(), dtype());
}

torch::Tensor LlamaModel::forward(const torch::Tensor& token_ids) const {
  const auto t = token_ids.size(1);
  if (t > config_.max_position_embeddings)
    throw Error("sequence of " + std::to_string(t) + " tokens is longer than the model's " +
                std::to_string(config_.max_position_embeddings) + " positions");
  auto tables = rope(t);
  auto x = embed(token_ids);
  for (std::int64_t i = 0; i < config_.num_layers; ++i) x = block_forward(i, x, tables);
  return logits(x);
}

}  // namespace tessera::model
