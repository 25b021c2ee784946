#include "model/llama_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"

namespace tessera::model {

using nlohmann::json;

namespace {

std::int64_t required_int(const json& j, const char* key, const std::string& source) {
  if (!j.contains(key)) throw Error(source + ": missing required key \"" + key + "\"");
  if (!j[key].is_number_integer()) throw Error(source + ": key \"" + key + "\" must be an integer");
  return j[key].get<std::int64_t>();
}

template <typename T>
T optional_value(const json& j, const char* key, T fallback, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    throw Error(source + ": key \"" + key + "\" has the wrong type");
  }
}

// eos_token_id may be an int or a list of ints (LLaMA-3); the first is the primary one.
std::int64_t token_id(const json& j, const char* key, std::int64_t fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (j[key].is_array() && !j[key].empty() && j[key][0].is_number_integer()) return j[key][0].get<std::int64_t>();
  if (j[key].is_number_integer()) return j[key].get<std::int64_t>();
  return fallback;
}

}  // namespace

void LlamaConfig::validate(const std::string& source) const {
  // Positive and below bounds far above any real model (hidden 16k, FFN 53k, vocabulary 256k,
  // 126 layers), so that sizes and the parameter count computed from them cannot overflow.
  auto positive = [&](std::int64_t v, const char* name, std::int64_t at_most = std::int64_t{1} << 22) {
    if (v <= 0) throw Error(source + ": " + name + " must be positive (got " + std::to_string(v) + ")");
    if (v > at_most)
      throw Error(source + ": " + name + " " + std::to_string(v) + " is absurd (more than " + std::to_string(at_most) +
                  ")");
  };
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_layers, "num_hidden_layers", 4096);
  positive(num_heads, "num_attention_heads", 4096);
  positive(num_kv_heads, "num_key_value_heads", 4096);
  positive(head_dim, "head_dim", 4096);
  positive(vocab_size, "vocab_size");
  positive(max_position_embeddings, "max_position_embeddings", std::int64_t{1} << 24);
  if (num_heads % num_kv_heads != 0)
    throw Error(source + ": num_attention_heads (" + std::to_string(num_heads) +
                ") is not a multiple of num_key_value_heads (" + std::to_string(num_kv_heads) + ")");
  if (head_dim % 2 != 0) throw Error(source + ": head_dim must be even for rotary embeddings");
  if (rms_norm_eps <= 0) throw Error(source + ": rms_norm_eps must be positive");
  if (rope_theta <= 0) throw Error(source + ": rope_theta must be positive");
  if (rope_scaling.type != "none" && rope_scaling.type != "linear" && rope_scaling.type != "llama3")
    throw Error(source + ": rope_scaling type \"" + rope_scaling.type +
                "\" is not supported (supported: linear, llama3)");
  if (rope_scaling.type != "none" && rope_scaling.factor <= 0)
    throw Error(source + ": rope_scaling.factor must be positive");
}

std::int64_t LlamaConfig::parameter_count() const {
  const std::int64_t q = num_heads * head_dim, kv = num_kv_heads * head_dim;
  std::int64_t block =
      hidden_size * q + 2 * hidden_size * kv + q * hidden_size + 3 * hidden_size * intermediate_size + 2 * hidden_size;
  if (attention_bias) block += q + 2 * kv;
  std::int64_t total = vocab_size * hidden_size + num_layers * block + hidden_size;
  if (!tie_word_embeddings) total += vocab_size * hidden_size;
  return total;
}

LlamaConfig LlamaConfig::from_hf_json_text(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(source + ": not a JSON object");
  LlamaConfig c;
  c.architecture = optional_value<std::string>(j, "model_type", "llama", source);
  if (c.architecture != "llama" && c.architecture != "mistral" && c.architecture != "qwen2")
    throw Error(source + ": model_type \"" + c.architecture +
                "\" is not a LLaMA-family decoder (supported: llama, mistral, qwen2)");
  c.hidden_size = required_int(j, "hidden_size", source);
  c.intermediate_size = required_int(j, "intermediate_size", source);
  c.num_layers = required_int(j, "num_hidden_layers", source);
  c.num_heads = required_int(j, "num_attention_heads", source);
  c.vocab_size = required_int(j, "vocab_size", source);
  c.num_kv_heads = optional_value<std::int64_t>(j, "num_key_value_heads", c.num_heads, source);
  c.head_dim = optional_value<std::int64_t>(j, "head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0, source);
  c.max_position_embeddings = optional_value<std::int64_t>(j, "max_position_embeddings", 2048, source);
  c.rms_norm_eps = optional_value<double>(j, "rms_norm_eps", 1e-6, source);
  c.rope_theta = optional_value<double>(j, "rope_theta", 10000.0, source);
  c.tie_word_embeddings = optional_value<bool>(j, "tie_word_embeddings", false, source);
  // Qwen2 always has q/k/v biases; LLaMA has them when attention_bias is true.
  c.attention_bias = c.architecture == "qwen2" ? true : optional_value<bool>(j, "attention_bias", false, source);
  if (optional_value<bool>(j, "mlp_bias", false, source))
    throw Error(source + ": mlp_bias = true is not supported (LLaMA MLPs have no bias)");
  c.bos_token_id = token_id(j, "bos_token_id", 1);
  c.eos_token_id = token_id(j, "eos_token_id", 2);
  c.torch_dtype = optional_value<std::string>(j, "torch_dtype", "float32", source);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const json& r = j["rope_scaling"];
    if (!r.is_object()) throw Error(source + ": rope_scaling must be an object or null");
    std::string type = optional_value<std::string>(r, "rope_type", "", source);
    if (type.empty()) type = optional_value<std::string>(r, "type", "none", source);
    if (type == "default") type = "none";
    c.rope_scaling.type = type;
    c.rope_scaling.factor = optional_value<double>(r, "factor", 1.0, source);
    c.rope_scaling.low_freq_factor = optional_value<double>(r, "low_freq_factor", 1.0, source);
    c.rope_scaling.high_freq_factor = optional_value<double>(r, "high_freq_factor", 4.0, source);
    c.rope_scaling.original_max_position =
        optional_value<std::int64_t>(r, "original_max_position_embeddings", 8192, source);
  }
  c.validate(source);
  return c;
}

LlamaConfig LlamaConfig::from_hf_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return from_hf_json_text(ss.str(), path);
}

std::string LlamaConfig::to_hf_json_text() const {
  json j;
  j["architectures"] = {architecture == "qwen2"     ? "Qwen2ForCausalLM"
                        : architecture == "mistral" ? "MistralForCausalLM"
                                                    : "LlamaForCausalLM"};
  j["model_type"] = architecture;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["attention_bias"] = attention_bias;
  j["hidden_act"] = "silu";
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["torch_dtype"] = torch_dtype;
  if (rope_scaling.type == "none") {
    j["rope_scaling"] = nullptr;
  } else {
    json r = {{"rope_type", rope_scaling.type}, {"factor", rope_scaling.factor}};
    if (rope_scaling.type == "llama3") {
      r["low_freq_factor"] = rope_scaling.low_freq_factor;
      r["high_freq_factor"] = rope_scaling.high_freq_factor;
      r["original_max_position_embeddings"] = rope_scaling.original_max_position;
    }
    j["rope_scaling"] = r;
  }
  return j.dump(2) + "\n";
}

}  // namespace tessera::model
