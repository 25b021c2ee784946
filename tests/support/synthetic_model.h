#pragma once
// A llama2.c checkpoint with rows of 256, for what the real models here lack (GGUF's k-quant
// super-blocks need input sizes that are multiples of 256): stories260K (width 64, FFN 172, 8
// heads of 8) embedded with zeros into width 256, FFN 256 and 8 heads of 32. It computes
// stories260K's function, so its perplexity and greedy text are a real model's:
// - every padded input or output is zero, so the residual stream's extra 192 dimensions stay 0;
// - RMSNorm over 256 dimensions divides by half the 64-dimension RMS, so the norm weights are
//   halved (the epsilon then acts 4x larger: 4e-5 instead of 1e-5 relative to the mean square);
// - head h's rotary pair i (frequency theta^(-2i/8)) moves to pair 4i of the 32-wide head, which
//   has the same frequency theta^(-8i/32), and q is doubled for the 1/sqrt(32) instead of
//   1/sqrt(8) attention scale.
// The tokenizer (tok512.bin) is copied beside it.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_data.h"

namespace tessera_test {

// Writes <dir>/stories260K-wide.bin and <dir>/tok512.bin; "" when stories260K is missing. `ffn`
// (at least 172) is the FFN width: 256 gives every Linear rows of 256; 320 or 300 give down_proj
// inputs that a GGUF k-quant cannot hold, for llama.cpp's per-tensor fallback types.
inline std::string write_wide_stories260k(const std::string& dir, std::int64_t ffn = 256) {
  const auto source = shared_data("models/stories260K/stories260K.bin");
  const auto tokenizer = shared_data("models/stories260K/tok512.bin");
  if (source.empty() || tokenizer.empty()) return "";
  std::ifstream in(source, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof h);
  const std::int64_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4], vocab = h[5], seq = h[6];
  const std::int64_t head = dim / heads;  // 8
  // The weights as floats (copied: the bytes of a char vector are not float objects).
  if (bytes.size() < sizeof h) return "";
  std::vector<float> weights((bytes.size() - sizeof h) / sizeof(float));
  std::memcpy(weights.data(), bytes.data() + sizeof h, weights.size() * sizeof(float));
  std::size_t next = 0;

  const std::int64_t D = 256, F = ffn, HEAD = D / heads;  // 32
  std::vector<float> out;
  // A [rows, cols] matrix of the source into [R, C] zeros, row r -> row_map(r), column c -> col_map(c).
  auto matrix = [&](std::int64_t rows, std::int64_t cols, std::int64_t R, std::int64_t C, auto row_map, auto col_map,
                    float scale) {
    std::vector<float> m(static_cast<std::size_t>(R * C), 0.f);
    const auto n = static_cast<std::size_t>(rows * cols);
    if (next + n > weights.size()) throw std::runtime_error("stories260K.bin is shorter than its header says");
    const float* src = weights.data() + next;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) m[row_map(r) * C + col_map(c)] = scale * src[r * cols + c];
    next += n;
    out.insert(out.end(), m.begin(), m.end());
  };
  auto same = [](std::int64_t i) { return i; };
  // Rotary rows: head k's row 2i + t -> row k HEAD + 8i + t (pair i -> pair 4i).
  auto rotary = [&](std::int64_t r) { return (r / head) * HEAD + 8 * ((r % head) / 2) + r % 2; };
  auto per_head = [&](std::int64_t r) { return (r / head) * HEAD + r % head; };  // v rows, o columns
  auto per_layer = [&](auto one) {
    for (std::int64_t l = 0; l < layers; ++l) one();
  };
  auto norm = [&] { matrix(1, dim, 1, D, same, same, 0.5f); };

  matrix(vocab, dim, vocab, D, same, same, 1.f);  // embeddings (also the classifier)
  per_layer(norm);
  per_layer([&] { matrix(heads * head, dim, heads * HEAD, D, rotary, same, 2.f); });          // wq
  per_layer([&] { matrix(kv_heads * head, dim, kv_heads * HEAD, D, rotary, same, 1.f); });    // wk
  per_layer([&] { matrix(kv_heads * head, dim, kv_heads * HEAD, D, per_head, same, 1.f); });  // wv
  per_layer([&] { matrix(dim, heads * head, D, heads * HEAD, same, per_head, 1.f); });        // wo
  per_layer(norm);
  per_layer([&] { matrix(hidden, dim, F, D, same, same, 1.f); });  // w1 (gate)
  per_layer([&] { matrix(dim, hidden, D, F, same, same, 1.f); });  // w2 (down)
  per_layer([&] { matrix(hidden, dim, F, D, same, same, 1.f); });  // w3 (up)
  norm();
  out.insert(out.end(), static_cast<std::size_t>(seq * HEAD), 0.f);  // freq_cis: not read

  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(tokenizer, dir + "/tok512.bin", std::filesystem::copy_options::overwrite_existing);
  const std::int32_t header[7] = {
      static_cast<std::int32_t>(D), static_cast<std::int32_t>(F), h[2], h[3], h[4], h[5], h[6]};
  const auto path = dir + "/stories260K-wide.bin";
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(header), sizeof header);
  f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(float)));
  return f ? path : "";
}

}  // namespace tessera_test
