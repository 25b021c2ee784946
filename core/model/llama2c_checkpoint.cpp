#include "model/llama2c_checkpoint.h"

#include <cstring>

#include "io/mapped_file.h"
#include "model/rotary_layout.h"
#include "util/error.h"

namespace tessera::model {
namespace {

struct Header {
  std::int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

Header read_header(const io::MappedFile& file) {
  if (file.size() < sizeof(Header))
    throw Error(file.path() + ": too short for a llama2.c checkpoint (" + std::to_string(file.size()) +
                " bytes, the header alone is 28)");
  Header h{};
  std::memcpy(&h, file.data(), sizeof(Header));
  return h;
}

LlamaConfig config_from_header(const Header& h, const std::string& path) {
  LlamaConfig c;
  c.hidden_size = h.dim;
  c.intermediate_size = h.hidden_dim;
  c.num_layers = h.n_layers;
  c.num_heads = h.n_heads;
  c.num_kv_heads = h.n_kv_heads;
  c.head_dim = h.n_heads > 0 ? h.dim / h.n_heads : 0;
  c.vocab_size = h.vocab_size < 0 ? -static_cast<std::int64_t>(h.vocab_size) : h.vocab_size;
  c.max_position_embeddings = h.seq_len;
  c.tie_word_embeddings = h.vocab_size > 0;
  c.rms_norm_eps = 1e-5;  // run.c's constant
  c.rope_theta = 10000.0;
  c.torch_dtype = "float32";
  if (h.n_heads > 0 && h.dim % h.n_heads != 0)
    throw Error(path + ": dim " + std::to_string(h.dim) + " is not divisible by n_heads " + std::to_string(h.n_heads) +
                " (not a llama2.c checkpoint?)");
  c.validate(path + " (llama2.c header)");
  return c;
}

}  // namespace

LlamaConfig read_llama2c_config(const std::string& path) {
  io::MappedFile file(path);
  return config_from_header(read_header(file), path);
}

LlamaModel load_llama2c_checkpoint(const std::string& path) {
  io::MappedFile file(path);
  const Header h = read_header(file);
  const LlamaConfig c = config_from_header(h, path);
  const std::int64_t dim = c.hidden_size, hidden = c.intermediate_size, layers = c.num_layers;
  const std::int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  const std::int64_t vocab = c.vocab_size, seq = c.max_position_embeddings;

  // Every float the file must hold, in order, to check the size before reading anything.
  const std::int64_t per_layer = dim + dim * q_dim + 2 * dim * kv_dim + q_dim * dim + dim + 3 * dim * hidden;
  std::int64_t floats = vocab * dim + layers * per_layer + dim + seq * c.head_dim;
  if (!c.tie_word_embeddings) floats += vocab * dim;
  const std::size_t expected = sizeof(Header) + static_cast<std::size_t>(floats) * sizeof(float);
  if (file.size() < expected)
    throw Error(path + ": truncated llama2.c checkpoint: the header (dim " + std::to_string(dim) + ", layers " +
                std::to_string(layers) + ", vocab " + std::to_string(vocab) + ") needs " + std::to_string(expected) +
                " bytes, the file has " + std::to_string(file.size()));
  if (file.size() > expected)
    throw Error(path + ": " + std::to_string(file.size() - expected) +
                " unexpected bytes after the weights: not a llama2.c legacy checkpoint, or the "
                "header does not match the weights");

  const float* cursor = reinterpret_cast<const float*>(file.data() + sizeof(Header));
  auto take = [&](std::vector<std::int64_t> shape) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    auto t = torch::from_blob(const_cast<float*>(cursor), shape, torch::kFloat32).clone();
    cursor += n;
    return t;
  };
  auto take_per_layer = [&](std::vector<std::int64_t> shape) {
    shape.insert(shape.begin(), layers);
    return take(shape);
  };

  ModelWeights w;
  w.embed_tokens = take({vocab, dim});
  auto attn_norm = take_per_layer({dim});
  auto wq = take_per_layer({q_dim, dim});
  auto wk = take_per_layer({kv_dim, dim});
  auto wv = take_per_layer({kv_dim, dim});
  auto wo = take_per_layer({dim, q_dim});
  auto ffn_norm = take_per_layer({dim});
  auto w1 = take_per_layer({hidden, dim});
  auto w2 = take_per_layer({dim, hidden});
  auto w3 = take_per_layer({hidden, dim});
  w.final_norm = take({dim});
  cursor += seq * c.head_dim;  // freq_cis_real and freq_cis_imag: recomputed, not read
  if (!c.tie_word_embeddings) w.lm_head = take({vocab, dim});

  for (std::int64_t l = 0; l < layers; ++l) {
    DecoderBlockWeights b;
    b.input_norm = attn_norm[l].clone();
    b.q_proj = interleaved_to_half_rotary(wq[l], c.num_heads);
    b.k_proj = interleaved_to_half_rotary(wk[l], c.num_kv_heads);
    b.v_proj = wv[l].clone();
    b.o_proj = wo[l].clone();
    b.post_attention_norm = ffn_norm[l].clone();
    b.gate_proj = w1[l].clone();
    b.down_proj = w2[l].clone();
    b.up_proj = w3[l].clone();
    w.blocks.push_back(std::move(b));
  }
  return LlamaModel(c, std::move(w));
}

}  // namespace tessera::model
