// The decoder checked against independent references: a line-by-line port of llama2.c's run.c
// forward pass (interleaved RoPE on the raw file weights, float loops, no libtorch), and a
// double-precision loop implementation of one block with GQA and q/k/v biases.
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <vector>

#include "model/llama2c_checkpoint.h"
#include "model/llama_model.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;

namespace {

// run.c's forward for every position of `tokens`; returns logits [T][vocab].
std::vector<std::vector<float>> run_c_forward(const std::string& path, const std::vector<int>& tokens) {
  std::ifstream f(path, std::ios::binary);
  int h[7];
  f.read(reinterpret_cast<char*>(h), sizeof(h));
  const int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4], seq = h[6];
  const bool shared = h[5] > 0;
  const int vocab = std::abs(h[5]), hs = dim / heads, kv_dim = kv_heads * hs, kv_mul = heads / kv_heads;
  auto read = [&](std::size_t n) {
    std::vector<float> v(n);
    f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * 4));
    return v;
  };
  auto emb = read(std::size_t(vocab) * dim), att_norm = read(std::size_t(layers) * dim);
  auto wq = read(std::size_t(layers) * dim * dim), wk = read(std::size_t(layers) * dim * kv_dim);
  auto wv = read(std::size_t(layers) * dim * kv_dim), wo = read(std::size_t(layers) * dim * dim);
  auto ffn_norm = read(std::size_t(layers) * dim), w1 = read(std::size_t(layers) * dim * hidden);
  auto w2 = read(std::size_t(layers) * hidden * dim), w3 = read(std::size_t(layers) * dim * hidden);
  auto final_norm = read(dim);
  read(std::size_t(seq) * hs);  // freq_cis
  auto wcls = shared ? emb : read(std::size_t(vocab) * dim);

  auto rmsnorm = [](std::vector<float>& o, const std::vector<float>& x, const float* w, int n) {
    float ss = 0;
    for (int j = 0; j < n; ++j) ss += x[j] * x[j];
    ss = 1.0f / std::sqrt(ss / n + 1e-5f);
    for (int j = 0; j < n; ++j) o[j] = w[j] * (ss * x[j]);
  };
  auto matmul = [](std::vector<float>& o, const std::vector<float>& x, const float* w, int n, int d) {
    for (int i = 0; i < d; ++i) {
      float v = 0;
      for (int j = 0; j < n; ++j) v += w[std::size_t(i) * n + j] * x[j];
      o[i] = v;
    }
  };
  std::vector<float> key_cache(std::size_t(layers) * seq * kv_dim), value_cache(key_cache.size());
  std::vector<std::vector<float>> out;
  std::vector<float> x(dim), xb(dim), xb2(dim), hb(hidden), hb2(hidden), q(dim), att(seq), logits(vocab);
  for (int pos = 0; pos < static_cast<int>(tokens.size()); ++pos) {
    std::copy(emb.begin() + std::size_t(tokens[pos]) * dim, emb.begin() + std::size_t(tokens[pos] + 1) * dim,
              x.begin());
    for (int l = 0; l < layers; ++l) {
      rmsnorm(xb, x, att_norm.data() + std::size_t(l) * dim, dim);
      float* k = key_cache.data() + (std::size_t(l) * seq + pos) * kv_dim;
      float* v = value_cache.data() + (std::size_t(l) * seq + pos) * kv_dim;
      std::vector<float> kv(kv_dim), vv(kv_dim);
      matmul(q, xb, wq.data() + std::size_t(l) * dim * dim, dim, dim);
      matmul(kv, xb, wk.data() + std::size_t(l) * dim * kv_dim, dim, kv_dim);
      matmul(vv, xb, wv.data() + std::size_t(l) * dim * kv_dim, dim, kv_dim);
      for (int i = 0; i < dim; i += 2) {
        const int head_dim = i % hs;
        const float freq = 1.0f / std::pow(10000.0f, head_dim / static_cast<float>(hs));
        const float val = pos * freq, fcr = std::cos(val), fci = std::sin(val);
        const int rotn = i < kv_dim ? 2 : 1;
        for (int r = 0; r < rotn; ++r) {
          float* vec = r == 0 ? q.data() : kv.data();
          const float v0 = vec[i], v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      std::copy(kv.begin(), kv.end(), k);
      std::copy(vv.begin(), vv.end(), v);
      for (int hh = 0; hh < heads; ++hh) {
        const float* qh = q.data() + hh * hs;
        for (int t = 0; t <= pos; ++t) {
          const float* kt = key_cache.data() + (std::size_t(l) * seq + t) * kv_dim + (hh / kv_mul) * hs;
          float score = 0;
          for (int i = 0; i < hs; ++i) score += qh[i] * kt[i];
          att[t] = score / std::sqrt(static_cast<float>(hs));
        }
        float mx = att[0], sum = 0;
        for (int t = 1; t <= pos; ++t) mx = std::max(mx, att[t]);
        for (int t = 0; t <= pos; ++t) {
          att[t] = std::exp(att[t] - mx);
          sum += att[t];
        }
        for (int t = 0; t <= pos; ++t) att[t] /= sum;
        float* xh = xb.data() + hh * hs;
        std::fill(xh, xh + hs, 0.0f);
        for (int t = 0; t <= pos; ++t) {
          const float* vt = value_cache.data() + (std::size_t(l) * seq + t) * kv_dim + (hh / kv_mul) * hs;
          for (int i = 0; i < hs; ++i) xh[i] += att[t] * vt[i];
        }
      }
      matmul(xb2, xb, wo.data() + std::size_t(l) * dim * dim, dim, dim);
      for (int i = 0; i < dim; ++i) x[i] += xb2[i];
      rmsnorm(xb, x, ffn_norm.data() + std::size_t(l) * dim, dim);
      matmul(hb, xb, w1.data() + std::size_t(l) * dim * hidden, dim, hidden);
      matmul(hb2, xb, w3.data() + std::size_t(l) * dim * hidden, dim, hidden);
      for (int i = 0; i < hidden; ++i) hb[i] = hb[i] * (1.0f / (1.0f + std::exp(-hb[i]))) * hb2[i];
      matmul(xb, hb, w2.data() + std::size_t(l) * dim * hidden, hidden, dim);
      for (int i = 0; i < dim; ++i) x[i] += xb[i];
    }
    rmsnorm(x, x, final_norm.data(), dim);
    matmul(logits, x, wcls.data(), dim, vocab);
    out.push_back(logits);
  }
  return out;
}

// One block in double with explicit loops (rotate_half RoPE, GQA, biases): y = block(x).
torch::Tensor reference_block(const model::LlamaConfig& c, const model::DecoderBlockWeights& w,
                              const torch::Tensor& x_in) {
  auto x = x_in.to(torch::kFloat64)[0];  // [T, D]
  const auto T = x.size(0), H = c.num_heads, KV = c.num_kv_heads, hd = c.head_dim;
  auto d = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat64) : t; };
  auto norm = [&](const torch::Tensor& v, const torch::Tensor& g) {
    return d(g) * v / torch::sqrt(v.pow(2).mean(-1, true) + c.rms_norm_eps);
  };
  auto h = norm(x, w.input_norm);
  auto q = torch::matmul(h, d(w.q_proj).t()), k = torch::matmul(h, d(w.k_proj).t()),
       v = torch::matmul(h, d(w.v_proj).t());
  if (w.q_bias.defined()) {
    q = q + d(w.q_bias);
    k = k + d(w.k_bias);
    v = v + d(w.v_bias);
  }
  auto attn = torch::zeros({T, H * hd}, torch::kFloat64);
  auto rope = [&](torch::Tensor vec, std::int64_t pos) {  // vec [hd]
    auto out = vec.clone();
    for (std::int64_t i = 0; i < hd / 2; ++i) {
      const double freq = 1.0 / std::pow(c.rope_theta, 2.0 * i / hd), a = pos * freq;
      const double x1 = vec[i].item<double>(), x2 = vec[i + hd / 2].item<double>();
      out[i] = x1 * std::cos(a) - x2 * std::sin(a);
      out[i + hd / 2] = x2 * std::cos(a) + x1 * std::sin(a);
    }
    return out;
  };
  for (std::int64_t head = 0; head < H; ++head) {
    const auto kvh = head / (H / KV);
    for (std::int64_t t = 0; t < T; ++t) {
      auto qt = rope(q[t].narrow(0, head * hd, hd), t);
      std::vector<double> scores;
      for (std::int64_t s = 0; s <= t; ++s)
        scores.push_back((qt * rope(k[s].narrow(0, kvh * hd, hd), s)).sum().item<double>() / std::sqrt(double(hd)));
      const double mx = *std::max_element(scores.begin(), scores.end());
      double sum = 0;
      for (auto& sc : scores) {
        sc = std::exp(sc - mx);
        sum += sc;
      }
      auto acc = torch::zeros({hd}, torch::kFloat64);
      for (std::int64_t s = 0; s <= t; ++s) acc += scores[s] / sum * v[s].narrow(0, kvh * hd, hd);
      attn[t].narrow(0, head * hd, hd).copy_(acc);
    }
  }
  auto x2 = x + torch::matmul(attn, d(w.o_proj).t());
  auto m = norm(x2, w.post_attention_norm);
  auto g = torch::matmul(m, d(w.gate_proj).t()), u = torch::matmul(m, d(w.up_proj).t());
  return (x2 + torch::matmul(g * torch::sigmoid(g) * u, d(w.down_proj).t())).unsqueeze(0);
}

model::DecoderBlockWeights random_block(const model::LlamaConfig& c, bool bias) {
  auto r = [](std::vector<std::int64_t> s, double scale) { return torch::randn(s) * scale; };
  const auto D = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim, F = c.intermediate_size;
  model::DecoderBlockWeights w;
  w.input_norm = 1 + r({D}, 0.1);
  w.post_attention_norm = 1 + r({D}, 0.1);
  w.q_proj = r({q, D}, 0.2);
  w.k_proj = r({kv, D}, 0.2);
  w.v_proj = r({kv, D}, 0.2);
  w.o_proj = r({D, q}, 0.2);
  w.gate_proj = r({F, D}, 0.2);
  w.up_proj = r({F, D}, 0.2);
  w.down_proj = r({D, F}, 0.2);
  if (bias) {
    w.q_bias = r({q}, 0.5);
    w.k_bias = r({kv}, 0.5);
    w.v_bias = r({kv}, 0.5);
  }
  return w;
}

}  // namespace

class TestDecoderNumerics : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void stories260KMatchesRunCForward() {
    TESSERA_REQUIRE_DATA(path, "models/stories260K/stories260K.bin");
    const std::vector<int> tokens = {1, 403, 407, 261, 378, 259, 68, 270, 300, 5, 17, 511, 2, 90};
    const auto expected = run_c_forward(path, tokens);
    const auto model = model::load_llama2c_checkpoint(path);
    auto ids = torch::tensor(std::vector<std::int64_t>(tokens.begin(), tokens.end())).unsqueeze(0);
    auto logits = model.forward(ids)[0];
    double max_err = 0;
    for (std::size_t t = 0; t < tokens.size(); ++t)
      for (std::size_t v = 0; v < expected[t].size(); ++v)
        max_err = std::max(max_err, std::fabs(logits[t][v].item<double>() - expected[t][v]));
    QVERIFY2(max_err < 1e-3, ("max |logit - run.c| = " + std::to_string(max_err)).c_str());
  }

  void blockWithGqaAndBiasMatchesLoopReference() {
    torch::manual_seed(7);
    model::LlamaConfig c;
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c.num_layers = 1;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 8;
    c.vocab_size = 16;
    c.max_position_embeddings = 16;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 500.0;
    c.attention_bias = true;
    const auto w = random_block(c, true);
    auto x = torch::randn({1, 9, 32});
    auto ours = model::decoder_block_forward(c, w, x, model::make_rope_tables(c, 9, torch::kCPU, torch::kFloat32));
    auto ref = reference_block(c, w, x);
    const double rel = ((ours.to(torch::kFloat64) - ref).norm() / ref.norm()).item<double>();
    QVERIFY2(rel < 1e-5, ("relative error " + std::to_string(rel)).c_str());
  }

  void llama3RopeScalingMatchesFormula() {
    model::LlamaConfig c;
    c.head_dim = 64;
    c.rope_theta = 500000.0;
    c.rope_scaling.type = "llama3";
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position = 8192;
    auto inv = model::rope_inverse_frequencies(c);
    for (int i = 0; i < 32; ++i) {
      const double base = 1.0 / std::pow(500000.0, 2.0 * i / 64), wavelen = 2 * M_PI / base;
      double expected;
      if (wavelen < 8192.0 / 4.0)
        expected = base;  // high frequency: unchanged
      else if (wavelen > 8192.0 / 1.0)
        expected = base / 8.0;  // low frequency: divided by factor
      else {
        const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
        expected = (1 - smooth) * base / 8.0 + smooth * base;
      }
      TESSERA_COMPARE_RELATIVE(inv[i].item<double>(), expected, 1e-5);
    }
  }

  void linearRopeScalingDividesFrequencies() {
    model::LlamaConfig c;
    c.head_dim = 16;
    c.rope_theta = 10000.0;
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = 4.0;
    auto inv = model::rope_inverse_frequencies(c);
    TESSERA_COMPARE_RELATIVE(inv[3].item<double>(), 1.0 / std::pow(10000.0, 6.0 / 16) / 4.0, 1e-6);
  }

  void halfPrecisionForwardStaysCloseToFp32() {
    TESSERA_REQUIRE_DATA(path, "models/stories260K/stories260K.bin");
    auto ref = model::load_llama2c_checkpoint(path);
    auto ids = torch::randint(0, 512, {1, 48}, torch::kInt64);
    auto want = torch::log_softmax(ref.forward(ids), -1);
    for (auto dtype : {torch::kBFloat16, torch::kFloat16}) {
      auto m = model::load_llama2c_checkpoint(path);
      m.to(torch::kCPU, dtype);
      auto got = torch::log_softmax(m.forward(ids).to(torch::kFloat32), -1);
      const double rel = ((got - want).norm() / want.norm()).item<double>();
      QVERIFY2(rel < 3e-2, (std::string(c10::toString(dtype)) + " relative error " + std::to_string(rel)).c_str());
    }
  }
};

TESSERA_TEST_MAIN(TestDecoderNumerics, stories260KMatchesRunCForward, blockWithGqaAndBiasMatchesLoopReference,
                  llama3RopeScalingMatchesFormula, linearRopeScalingDividesFrequencies,
                  halfPrecisionForwardStaysCloseToFp32)
#ifdef TESSERA_TEST_WITH_QT
#include "test_decoder_numerics.moc"
#endif
