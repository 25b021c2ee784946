#pragma once
// A LLaMA-family decoder (RMSNorm, RoPE with linear/llama3 scaling, GQA, SwiGLU, optional q/k/v
// bias, tied embeddings) with a block-level interface: quantization methods run one decoder block
// at a time on captured inputs, and may observe the input of every Linear layer.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "model/llama_config.h"

namespace tessera::model {

enum class LinearKind { Q, K, V, O, Gate, Up, Down };
const char* linear_name(LinearKind kind);  // "q_proj", ... as in Hugging Face names
constexpr LinearKind kAllLinears[] = {LinearKind::Q,    LinearKind::K,  LinearKind::V,   LinearKind::O,
                                      LinearKind::Gate, LinearKind::Up, LinearKind::Down};

// Weights in PyTorch layout ([out, in]); the rotary convention is Hugging Face's (rotate_half).
struct DecoderBlockWeights {
  torch::Tensor input_norm, post_attention_norm;
  torch::Tensor q_proj, k_proj, v_proj, o_proj;
  torch::Tensor q_bias, k_bias, v_bias;  // undefined unless config.attention_bias
  torch::Tensor gate_proj, up_proj, down_proj;

  torch::Tensor& linear(LinearKind kind);
  const torch::Tensor& linear(LinearKind kind) const;
  std::vector<torch::Tensor*> all_tensors();
};

struct ModelWeights {
  torch::Tensor embed_tokens;  // [vocab, hidden]
  std::vector<DecoderBlockWeights> blocks;
  torch::Tensor final_norm;
  torch::Tensor lm_head;  // undefined when tied to embed_tokens
};

// cos/sin tables [T, head_dim] for positions 0..T-1.
struct RopeTables {
  torch::Tensor cos, sin;
};

// Inverse frequencies [head_dim/2] after the configured rope scaling (fp32).
torch::Tensor rope_inverse_frequencies(const LlamaConfig& config);
RopeTables make_rope_tables(const LlamaConfig& config, std::int64_t seq_len, torch::Device device,
                            torch::ScalarType dtype);

using LinearInputObserver = std::function<void(LinearKind, const torch::Tensor& input)>;

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// How a block is run: `activation_bits` in 2..8 fake-quantizes the input of every Linear per token
// (W4A4-style evaluation); 0 leaves activations in full precision.
struct BlockForwardOptions {
  int activation_bits = 0;
  const LinearInputObserver* observer = nullptr;  // sees the input of every Linear
  // The fused CUDA RMSNorm (model/fused_rms_norm.h) where it serves; false: libtorch ops only.
  bool fused_kernels = true;
};

// The attention sub-layer on normalized input h [B, T, hidden]: o_proj(attention(q, k, v)).
torch::Tensor attention_forward(const LlamaConfig& config, const DecoderBlockWeights& w, const torch::Tensor& h,
                                const RopeTables& rope, const BlockForwardOptions& options = {});
// The SwiGLU MLP on normalized input m: down(silu(gate(m)) * up(m)).
torch::Tensor mlp_forward(const DecoderBlockWeights& w, const torch::Tensor& m,
                          const BlockForwardOptions& options = {});

// One decoder block on x [B, T, hidden]; returns the block output. `observer`, when given, sees the
// input of every Linear (q/k/v share one input, as do gate/up).
torch::Tensor decoder_block_forward(const LlamaConfig& config, const DecoderBlockWeights& w, const torch::Tensor& x,
                                    const RopeTables& rope, const LinearInputObserver* observer = nullptr);
torch::Tensor decoder_block_forward(const LlamaConfig& config, const DecoderBlockWeights& w, const torch::Tensor& x,
                                    const RopeTables& rope, const BlockForwardOptions& options);

class LlamaModel {
 public:
  LlamaModel(LlamaConfig config, ModelWeights weights);

  const LlamaConfig& config() const { return config_; }
  ModelWeights& weights() { return weights_; }
  const ModelWeights& weights() const { return weights_; }
  torch::Device device() const { return weights_.embed_tokens.device(); }
  torch::ScalarType dtype() const { return weights_.embed_tokens.scalar_type(); }

  // Moves and casts every weight (norms included) in place.
  void to(torch::Device device, torch::ScalarType dtype);

  torch::Tensor embed(const torch::Tensor& token_ids) const;  // [B, T] int64 -> [B, T, hidden]
  torch::Tensor block_forward(std::int64_t index, const torch::Tensor& x, const RopeTables& rope,
                              const LinearInputObserver* observer = nullptr) const;
  // Activation fake-quantization for every block's Linear inputs (0 = off); used to evaluate
  // weight-activation quantized runs.
  void set_activation_bits(int bits) { activation_bits_ = bits; }
  int activation_bits() const { return activation_bits_; }
  torch::Tensor logits(const torch::Tensor& hidden) const;      // final norm + lm_head
  torch::Tensor forward(const torch::Tensor& token_ids) const;  // [B, T] -> logits [B, T, vocab]
  RopeTables rope(std::int64_t seq_len) const;

  const torch::Tensor& output_embedding() const;

 private:
  LlamaConfig config_;
  ModelWeights weights_;
  int activation_bits_ = 0;
};

}  // namespace tessera::model
