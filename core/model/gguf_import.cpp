#include "model/gguf_import.h"

#include <cstring>

#include "formats/gguf_blocks.h"
#include "model/rotary_layout.h"
#include "runtime/finite_check.h"
#include "util/error.h"

namespace tessera::model {
namespace {

std::vector<std::int64_t> torch_shape(const formats::GgufTensorInfo& t) {
  std::vector<std::int64_t> s;
  for (auto it = t.ne.rbegin(); it != t.ne.rend(); ++it) s.push_back(static_cast<std::int64_t>(*it));
  return s;
}

// Walks the blocks of a block-type tensor: f(block index, block).
template <typename F>
void for_each_block(const formats::GgufTensorInfo& t, const formats::GgufBlockType& type, F&& f) {
  const std::size_t blocks = t.nbytes / type.bytes;
  for (std::size_t b = 0; b < blocks; ++b) f(b, formats::unpack_gguf_block(type, t.data + b * type.bytes));
}

}  // namespace

torch::Tensor decode_gguf_tensor(const formats::GgufTensorInfo& t) {
  const auto shape = torch_shape(t);
  switch (t.type) {
    case formats::GgmlType::F32:
      return torch::from_blob(const_cast<std::uint8_t*>(t.data), shape, torch::kFloat32).clone();
    case formats::GgmlType::F16:
      return torch::from_blob(const_cast<std::uint8_t*>(t.data), shape, torch::kFloat16).to(torch::kFloat32);
    case formats::GgmlType::BF16:
      return torch::from_blob(const_cast<std::uint8_t*>(t.data), shape, torch::kBFloat16).to(torch::kFloat32);
    default:
      if (const auto* type = formats::gguf_block_type(t.type)) {
        auto out = torch::empty(shape, torch::kFloat32);
        float* y = out.data_ptr<float>();
        // ggml's dequantize_row_*: the fp16 fields widened, then the products (and sum) in fp32.
        const auto n = static_cast<std::size_t>(type->weights);
        for_each_block(t, *type, [&](std::size_t b, const formats::GgufBlock& block) {
          for (std::size_t j = 0; j < n; ++j)
            y[b * n + j] = formats::gguf_block_value(*type, block, static_cast<int>(j));
        });
        return out;
      }
  }
  throw Error("GGUF tensor \"" + t.name + "\" has an unsupported type");
}

torch::Tensor gguf_block_codes(const formats::GgufTensorInfo& t) {
  const auto* type = formats::gguf_block_type(t.type);
  if (!type) throw Error("GGUF tensor \"" + t.name + "\" is " + formats::ggml_type_name(t.type) + ", not a block type");
  auto out = torch::empty(torch_shape(t), torch::kUInt8);
  auto* dst = out.data_ptr<std::uint8_t>();
  const auto n = static_cast<std::size_t>(type->weights);
  for_each_block(t, *type, [&](std::size_t b, const formats::GgufBlock& block) {
    std::memcpy(dst + b * n, block.codes.data(), n);
  });
  return out;
}

namespace {

// A metadata value of the JSON type the reader expects, or an error naming the key and what it holds
// (never a raw JSON type error).
const nlohmann::json& typed(const formats::GgufFile& f, const std::string& key,
                            bool (nlohmann::json::*is)() const noexcept, const char* expected) {
  const auto& v = f.value(key);
  if (!(v.*is)()) throw Error(f.path() + ": " + key + " is " + v.dump() + ", expected " + expected);
  return v;
}

template <typename T>
T typed_or(const formats::GgufFile& f, const std::string& key, T fallback, bool (nlohmann::json::*is)() const noexcept,
           const char* expected) {
  return f.metadata().contains(key) ? typed(f, key, is, expected).get<T>() : fallback;
}

}  // namespace

model::LlamaConfig gguf_llama_config(const formats::GgufFile& f) {
  const auto arch = typed(f, "general.architecture", &nlohmann::json::is_string, "a string").get<std::string>();
  if (arch != "llama") throw Error(f.path() + ": general.architecture is \"" + arch + "\"; only llama is read");
  model::LlamaConfig c;
  // Every count must be positive before it divides anything or sizes anything.
  auto u = [&](const std::string& key) {
    const auto& v = f.value(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() <= 0)
      throw Error(f.path() + ": " + key + " is " + v.dump() + ", expected a positive integer");
    return v.get<std::int64_t>();
  };
  c.hidden_size = u("llama.embedding_length");
  c.intermediate_size = u("llama.feed_forward_length");
  c.num_layers = u("llama.block_count");
  c.num_heads = u("llama.attention.head_count");
  c.num_kv_heads =
      f.metadata().contains("llama.attention.head_count_kv") ? u("llama.attention.head_count_kv") : c.num_heads;
  c.head_dim = f.metadata().contains("llama.attention.key_length") ? u("llama.attention.key_length")
                                                                   : c.hidden_size / c.num_heads;
  c.max_position_embeddings = u("llama.context_length");
  c.rms_norm_eps =
      typed(f, "llama.attention.layer_norm_rms_epsilon", &nlohmann::json::is_number, "a number").get<double>();
  c.rope_theta = typed_or(f, "llama.rope.freq_base", 10000.0, &nlohmann::json::is_number, "a number");
  if (typed_or(f, "llama.rope.scaling.type", std::string("none"), &nlohmann::json::is_string, "a string") == "linear") {
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = typed(f, "llama.rope.scaling.factor", &nlohmann::json::is_number, "a number").get<double>();
  }
  const auto& embed = f.tensor("token_embd.weight");
  if (embed.ne.size() != 2) throw Error(f.path() + ": token_embd.weight is not a matrix");
  c.vocab_size = static_cast<std::int64_t>(embed.ne[1]);
  c.tie_word_embeddings = !f.contains("output.weight");
  c.bos_token_id =
      typed_or(f, "tokenizer.ggml.bos_token_id", std::int64_t(1), &nlohmann::json::is_number_integer, "an integer");
  c.eos_token_id =
      typed_or(f, "tokenizer.ggml.eos_token_id", std::int64_t(2), &nlohmann::json::is_number_integer, "an integer");
  c.validate(f.path());
  return c;
}

model::LlamaModel load_gguf_model(const std::string& path) {
  const formats::GgufFile f(path);
  if (f.metadata().contains("tessera.tensor_data_sha256") &&
      f.tensor_data_sha256() !=
          typed(f, "tessera.tensor_data_sha256", &nlohmann::json::is_string, "a string").get<std::string>())
    throw Error(path + ": the tensor data does not match its recorded SHA-256: the file is corrupted");
  const auto c = gguf_llama_config(f);
  auto load = [&](const std::string& name, const std::vector<std::int64_t>& shape) {
    auto t = decode_gguf_tensor(f.tensor(name));
    if (t.sizes().vec() != shape)
      throw Error(path + ": tensor \"" + name + "\" does not have the shape the metadata implies");
    if (!runtime::all_finite(t)) throw Error(path + ": tensor \"" + name + "\" contains NaN or infinite values");
    return t;
  };
  const auto d = c.hidden_size, ff = c.intermediate_size;
  const auto q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  model::ModelWeights w;
  w.embed_tokens = load("token_embd.weight", {c.vocab_size, d});
  w.final_norm = load("output_norm.weight", {d});
  if (!c.tie_word_embeddings) w.lm_head = load("output.weight", {c.vocab_size, d});
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    model::DecoderBlockWeights b;
    b.input_norm = load(p + "attn_norm.weight", {d});
    b.post_attention_norm = load(p + "ffn_norm.weight", {d});
    b.q_proj = model::interleaved_to_half_rotary(load(p + "attn_q.weight", {q_dim, d}), c.num_heads);
    b.k_proj = model::interleaved_to_half_rotary(load(p + "attn_k.weight", {kv_dim, d}), c.num_kv_heads);
    b.v_proj = load(p + "attn_v.weight", {kv_dim, d});
    b.o_proj = load(p + "attn_output.weight", {d, q_dim});
    b.gate_proj = load(p + "ffn_gate.weight", {ff, d});
    b.up_proj = load(p + "ffn_up.weight", {ff, d});
    b.down_proj = load(p + "ffn_down.weight", {d, ff});
    w.blocks.push_back(std::move(b));
  }
  return model::LlamaModel(c, std::move(w));
}

}  // namespace tessera::model
