#include "model/hf_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "formats/tensor_bytes.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "runtime/finite_check.h"
#include "util/error.h"
#include "util/version.h"

namespace fs = std::filesystem;

namespace tessera::model {
namespace {

// Resolves tensor names to the (possibly sharded) safetensors file that holds them.
class TensorSource {
 public:
  explicit TensorSource(const std::string& folder) {
    const fs::path dir(folder);
    const fs::path single = dir / "model.safetensors";
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(single)) {
      auto file = std::make_shared<io::SafetensorsFile>(single.string());
      io::verify_tensor_digests(*file, kTensorDigestsKey);  // exports carry digests; corruption fails here
      for (const auto& [name, view] : file->tensors()) owner_[name] = file;
    } else if (fs::exists(index)) {
      std::ifstream in(index);
      nlohmann::json j;
      try {
        in >> j;
      } catch (const nlohmann::json::exception& e) {
        throw Error(index.string() + ": not valid JSON (" + e.what() + ")");
      }
      if (!j.contains("weight_map") || !j["weight_map"].is_object())
        throw Error(index.string() + ": missing \"weight_map\"");
      std::map<std::string, std::shared_ptr<io::SafetensorsFile>> shards;
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string())
          throw Error(index.string() + ": weight_map[\"" + it.key() + "\"] is " + it.value().dump() +
                      ", not a file name");
        const std::string shard = it.value().get<std::string>();
        // A shard is a file in this folder: no absolute path, no folder part, no "..".
        const fs::path shard_name(shard);
        if (shard.empty() || shard_name.has_parent_path() || shard_name.is_absolute() || shard == "." || shard == "..")
          throw Error(index.string() + " names shard \"" + shard + "\", which is not a file name inside " + folder);
        if (!shards.count(shard)) {
          const fs::path shard_path = dir / shard;
          if (!fs::exists(shard_path))
            throw Error(index.string() + " names shard " + shard + ", which is not in " + folder);
          shards[shard] = std::make_shared<io::SafetensorsFile>(shard_path.string());
        }
        owner_[it.key()] = shards[shard];
      }
    } else {
      throw Error(folder + ": no model.safetensors or model.safetensors.index.json");
    }
  }

  bool contains(const std::string& name) const { return owner_.count(name) != 0; }

  // The number of decoder layers the checkpoint holds tensors for (highest model.layers.N + 1).
  std::int64_t stored_layers() const {
    static const std::string prefix = "model.layers.";
    std::int64_t n = 0;
    for (const auto& [name, file] : owner_) {
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      const auto end = name.find('.', prefix.size());
      const auto digits =
          name.substr(prefix.size(), end == std::string::npos ? std::string::npos : end - prefix.size());
      if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      n = std::max<std::int64_t>(n, std::stoll(digits) + 1);
    }
    return n;
  }

  torch::Tensor load(const std::string& name, const std::vector<std::int64_t>& shape) const {
    auto it = owner_.find(name);
    if (it == owner_.end()) throw Error("checkpoint is missing tensor \"" + name + "\"");
    const io::TensorView& view = it->second->tensor(name);
    const std::string where = it->second->path() + ": tensor \"" + name + "\"";
    if (view.dtype != io::DType::F32 && view.dtype != io::DType::F16 && view.dtype != io::DType::BF16)
      throw Error(where + " has dtype " + io::dtype_name(view.dtype) + "; model weights must be F32, F16 or BF16");
    if (view.shape != shape) {
      auto str = [](const std::vector<std::int64_t>& s) {
        std::string r = "[";
        for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
        return r + "]";
      };
      throw Error(where + " has shape " + str(view.shape) + ", config.json implies " + str(shape));
    }
    auto t = formats::float32_tensor_from_view(view);
    if (!runtime::all_finite(t)) throw Error(where + " contains NaN or infinite values");
    return t;
  }

 private:
  std::map<std::string, std::shared_ptr<io::SafetensorsFile>> owner_;
};

// Tensors of a folder, through the resolver first when there is one.
class ResolvedSource {
 public:
  ResolvedSource(const TensorSource& file, const TensorResolver& resolver, const std::string& folder)
      : file_(file), resolver_(resolver), folder_(folder) {}

  torch::Tensor load(const std::string& name, const std::vector<std::int64_t>& shape) const {
    if (resolver_) {
      auto t = resolver_(name);
      if (t.defined()) {
        if (t.sizes().vec() != shape)
          throw Error(folder_ + ": tensor \"" + name + "\" decodes to a shape that config.json does not imply");
        return t;
      }
    }
    return file_.load(name, shape);
  }

 private:
  const TensorSource& file_;
  const TensorResolver& resolver_;
  const std::string& folder_;
};

LlamaConfig folder_config(const std::string& folder) {
  const fs::path config_path = fs::path(folder) / "config.json";
  if (!fs::exists(config_path)) throw Error(folder + ": no config.json (not a Hugging Face model folder)");
  return LlamaConfig::from_hf_config_file(config_path.string());
}

DecoderBlockWeights load_block(const ResolvedSource& source, const LlamaConfig& c, std::int64_t l) {
  const std::int64_t d = c.hidden_size, ff = c.intermediate_size;
  const std::int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  const std::string p = "model.layers." + std::to_string(l) + ".";
  DecoderBlockWeights b;
  b.input_norm = source.load(p + "input_layernorm.weight", {d});
  b.post_attention_norm = source.load(p + "post_attention_layernorm.weight", {d});
  b.q_proj = source.load(p + "self_attn.q_proj.weight", {q_dim, d});
  b.k_proj = source.load(p + "self_attn.k_proj.weight", {kv_dim, d});
  b.v_proj = source.load(p + "self_attn.v_proj.weight", {kv_dim, d});
  b.o_proj = source.load(p + "self_attn.o_proj.weight", {d, q_dim});
  if (c.attention_bias) {
    b.q_bias = source.load(p + "self_attn.q_proj.bias", {q_dim});
    b.k_bias = source.load(p + "self_attn.k_proj.bias", {kv_dim});
    b.v_bias = source.load(p + "self_attn.v_proj.bias", {kv_dim});
  }
  b.gate_proj = source.load(p + "mlp.gate_proj.weight", {ff, d});
  b.up_proj = source.load(p + "mlp.up_proj.weight", {ff, d});
  b.down_proj = source.load(p + "mlp.down_proj.weight", {d, ff});
  return b;
}

}  // namespace

LlamaModel load_hf_checkpoint(const std::string& folder, const TensorResolver& resolver) {
  const LlamaConfig c = folder_config(folder);
  const TensorSource file_source(folder);
  // Fewer layers in config.json than in the weights would silently drop the rest.
  if (const auto stored = file_source.stored_layers(); stored > c.num_layers)
    throw Error(folder + ": the checkpoint holds " + std::to_string(stored) +
                " layers, config.json's num_hidden_layers says " + std::to_string(c.num_layers));
  const ResolvedSource source(file_source, resolver, folder);
  const std::int64_t d = c.hidden_size;
  ModelWeights w;
  // Tied checkpoints written by transformers' safetensors de-duplication may store the shared
  // matrix only once, as lm_head.weight.
  const bool embed_stored_as_head = c.tie_word_embeddings && !file_source.contains("model.embed_tokens.weight") &&
                                    file_source.contains("lm_head.weight");
  w.embed_tokens =
      source.load(embed_stored_as_head ? "lm_head.weight" : "model.embed_tokens.weight", {c.vocab_size, d});
  w.final_norm = source.load("model.norm.weight", {d});
  if (!c.tie_word_embeddings) w.lm_head = source.load("lm_head.weight", {c.vocab_size, d});
  for (std::int64_t l = 0; l < c.num_layers; ++l) w.blocks.push_back(load_block(source, c, l));
  return LlamaModel(c, std::move(w));
}

DecoderBlockWeights load_hf_block(const std::string& folder, std::int64_t block) {
  const LlamaConfig c = folder_config(folder);
  if (block < 0 || block >= c.num_layers)
    throw Error(folder + " has " + std::to_string(c.num_layers) + " blocks; there is no block " +
                std::to_string(block));
  const TensorSource file_source(folder);
  const TensorResolver none;
  return load_block(ResolvedSource(file_source, none, folder), c, block);
}

void save_hf_checkpoint(const LlamaModel& model, const std::string& folder, torch::ScalarType dtype,
                        bool replace_existing, const HfSaveOptions& options) {
  if (dtype != torch::kFloat32 && dtype != torch::kFloat16 && dtype != torch::kBFloat16)
    throw Error("Hugging Face export supports float32, float16 and bfloat16");
  LlamaConfig c = model.config();
  c.torch_dtype = dtype == torch::kFloat32 ? "float32" : dtype == torch::kFloat16 ? "float16" : "bfloat16";
  const ModelWeights& w = model.weights();

  io::SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  writer.set_metadata("tessera_version", kVersion);
  if (options.tensor_digests) writer.set_digest_key(kTensorDigestsKey);
  for (const auto& [key, value] : options.metadata) writer.set_metadata(key, value);
  auto put = [&](const std::string& name, const torch::Tensor& t) {
    if (options.write_tensor && options.write_tensor(name, writer)) return;
    if (t.defined()) formats::add_tensor(writer, name, t.to(dtype));
  };
  put("model.embed_tokens.weight", w.embed_tokens);
  put("model.norm.weight", w.final_norm);
  if (!c.tie_word_embeddings) put("lm_head.weight", w.lm_head);
  for (std::size_t l = 0; l < w.blocks.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const auto& b = w.blocks[l];
    put(p + "input_layernorm.weight", b.input_norm);
    put(p + "post_attention_layernorm.weight", b.post_attention_norm);
    put(p + "self_attn.q_proj.weight", b.q_proj);
    put(p + "self_attn.k_proj.weight", b.k_proj);
    put(p + "self_attn.v_proj.weight", b.v_proj);
    put(p + "self_attn.o_proj.weight", b.o_proj);
    put(p + "self_attn.q_proj.bias", b.q_bias);
    put(p + "self_attn.k_proj.bias", b.k_bias);
    put(p + "self_attn.v_proj.bias", b.v_bias);
    put(p + "mlp.gate_proj.weight", b.gate_proj);
    put(p + "mlp.up_proj.weight", b.up_proj);
    put(p + "mlp.down_proj.weight", b.down_proj);
  }
  io::write_folder_atomically(folder, replace_existing, [&](const std::string& tmp) {
    std::ofstream config(fs::path(tmp) / "config.json");
    config << c.to_hf_json_text();
    config.flush();
    std::ofstream out(fs::path(tmp) / "model.safetensors", std::ios::binary);
    writer.write(out);
    out.flush();
    if (!out || !config) throw Error("writing " + folder + " failed (disk full?)");
    out.close();
    if (options.finish) options.finish(tmp);
  });
}

}  // namespace tessera::model
