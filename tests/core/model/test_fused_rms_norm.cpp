// The fused CUDA RMSNorm (model/fused_rms_norm.h) against the libtorch-op RMSNorm it replaces
// (model::rms_norm, the Hugging Face formula): outputs and the gradients of x and of the weight, for
// fp32/bf16/fp16, rows of odd length (100, 1000) and of a 7B block (4096); and a whole decoder block
// with and without it. Elsewhere than CUDA the fused path must decline (the op path serves).
#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "model/fused_rms_norm.h"
#include "model/llama_model.h"
#include "tessera_test.h"
#include "test_device.h"

using namespace tessera;

namespace {

double max_abs_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

double max_abs(const torch::Tensor& a) { return a.to(torch::kFloat64).abs().max().item<double>(); }

// Relative to the largest value: a last-bit difference of the type (the fp32 row sums add up in
// another order) moves one element by one unit.
double tolerance(torch::ScalarType t) { return t == torch::kFloat32 ? 1e-5 : (t == torch::kBFloat16 ? 1.6e-2 : 2e-3); }

#define CHECK_CLOSE(a, b, rel, what)                                                            \
  do {                                                                                          \
    const double d_ = max_abs_difference((a), (b)), tol_ = (rel)*max_abs(b);                    \
    std::printf("%-36s max diff %.3g (tolerance %.3g)\n", std::string(what).c_str(), d_, tol_); \
    QVERIFY2(d_ <= tol_, (std::string(what) + " differs by " + std::to_string(d_)).c_str());    \
  } while (0)

}  // namespace

class TestFusedRmsNorm : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void declinesOffCuda() {
    const auto x = torch::randn({2, 3, 8});
    QVERIFY(!model::fused_rms_norm(x, torch::ones({8}), 1e-5).has_value());
  }

  void matchesTheOpPathOnCuda() {
    if (!tessera_test::cuda_wanted()) QSKIP("no CUDA device (set TESSERA_TEST_DEVICE=cuda on the GPU machine)");
    const torch::Device cuda(torch::kCUDA, 0);
    for (auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kHalf}) {
      for (std::int64_t cols : {100, 1000, 4096}) {
        const std::string name = std::string(c10::toString(dtype)) + " cols " + std::to_string(cols);
        torch::manual_seed(cols);
        const auto x0 = (torch::randn({3, 37, cols}) * 2.0 + 0.5).to(cuda, dtype);
        const auto w0 = (torch::rand({cols}) + 0.5).to(cuda, dtype);
        const auto gy = torch::randn({3, 37, cols}).to(cuda, dtype);
        auto xf = x0.clone().set_requires_grad(true), wf = w0.clone().set_requires_grad(true);
        auto xo = x0.clone().set_requires_grad(true), wo = w0.clone().set_requires_grad(true);
        const auto fused = model::fused_rms_norm(xf, wf, 1e-5);
        QVERIFY2(fused.has_value(),
                 ("the fused RMSNorm declined " + name + ": no TESSERA_CUDA_KERNELS in this build?").c_str());
        const auto ops = model::rms_norm(xo, wo, 1e-5);
        QCOMPARE(fused->scalar_type(), ops.scalar_type());
        CHECK_CLOSE(*fused, ops, tolerance(dtype), name + " y");
        fused->backward(gy);
        ops.backward(gy);
        CHECK_CLOSE(xf.grad(), xo.grad(), tolerance(dtype), name + " dL/dx");
        // dL/dweight sums 111 rows: the op path's reduction rounds in another order.
        CHECK_CLOSE(wf.grad(), wo.grad(), 4 * tolerance(dtype), name + " dL/dweight");
      }
    }
  }

  void decoderBlockIsTheSameWithIt() {
    if (!tessera_test::cuda_wanted()) QSKIP("no CUDA device (set TESSERA_TEST_DEVICE=cuda on the GPU machine)");
    const torch::Device cuda(torch::kCUDA, 0);
    model::LlamaConfig c;
    c.hidden_size = 256;
    c.intermediate_size = 688;
    c.num_heads = 8;
    c.num_kv_heads = 4;
    c.num_layers = 1;
    c.head_dim = 32;
    c.vocab_size = 32;
    c.rms_norm_eps = 1e-5;
    torch::manual_seed(3);
    model::DecoderBlockWeights w;
    const auto kv = c.hidden_size / c.num_heads * c.num_kv_heads;
    w.input_norm = torch::rand({c.hidden_size}) + 0.5;
    w.post_attention_norm = torch::rand({c.hidden_size}) + 0.5;
    w.q_proj = torch::randn({c.hidden_size, c.hidden_size}) * 0.05;
    w.k_proj = torch::randn({kv, c.hidden_size}) * 0.05;
    w.v_proj = torch::randn({kv, c.hidden_size}) * 0.05;
    w.o_proj = torch::randn({c.hidden_size, c.hidden_size}) * 0.05;
    w.gate_proj = torch::randn({c.intermediate_size, c.hidden_size}) * 0.05;
    w.up_proj = torch::randn({c.intermediate_size, c.hidden_size}) * 0.05;
    w.down_proj = torch::randn({c.hidden_size, c.intermediate_size}) * 0.05;
    for (auto* t : w.all_tensors())
      if (t->defined()) *t = t->to(cuda, torch::kBFloat16);
    auto rope = model::make_rope_tables(c, 64, cuda, torch::kBFloat16);
    const auto x0 = torch::randn({2, 64, c.hidden_size}).to(cuda, torch::kBFloat16);
    const auto gy = torch::randn({2, 64, c.hidden_size}).to(cuda, torch::kBFloat16);
    torch::Tensor out[2], grad[2];
    for (int fused = 0; fused < 2; ++fused) {
      model::BlockForwardOptions options;
      options.fused_kernels = fused == 1;
      auto x = x0.clone().set_requires_grad(true);
      out[fused] = model::decoder_block_forward(c, w, x, rope, options);
      out[fused].backward(gy);
      grad[fused] = x.grad();
    }
    CHECK_CLOSE(out[1], out[0], 1.6e-2, "block output (bf16)");
    CHECK_CLOSE(grad[1], grad[0], 1.6e-2, "block dL/dx (bf16)");
  }
};

TESSERA_TEST_MAIN(TestFusedRmsNorm, declinesOffCuda, matchesTheOpPathOnCuda, decoderBlockIsTheSameWithIt)
#ifdef TESSERA_TEST_WITH_QT
#include "test_fused_rms_norm.moc"
#endif
