#pragma once
// Hyperparameters of a LLaMA-family decoder, in Hugging Face naming where one exists. Torch-free so
// that the GUI and CLI can show a model's architecture without libtorch headers.
#include <cstdint>
#include <string>

namespace tessera::model {

struct RopeScaling {
  std::string type = "none";  // "none", "linear" or "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;               // llama3 only
  double high_freq_factor = 4.0;              // llama3 only
  std::int64_t original_max_position = 8192;  // llama3 only
};

struct LlamaConfig {
  std::string architecture = "llama";  // model_type: llama, mistral, qwen2
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;  // hidden_size / num_heads unless the config says otherwise
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v bias (Qwen2)
  std::int64_t bos_token_id = 1;
  std::int64_t eos_token_id = 2;
  std::string torch_dtype = "float32";  // dtype the checkpoint stores

  // Throws tessera::Error naming the first inconsistent field (`source` says where it came from).
  void validate(const std::string& source) const;
  std::int64_t parameter_count() const;

  static LlamaConfig from_hf_json_text(const std::string& json_text, const std::string& source);
  static LlamaConfig from_hf_config_file(const std::string& path);
  std::string to_hf_json_text() const;
};

}  // namespace tessera::model
