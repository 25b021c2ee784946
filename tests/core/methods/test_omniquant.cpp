// OmniQuant (arXiv 2308.13137): the LWC quantizer, the LET transform, the method on
// stories260K, and TesseraQ started from its clip logits.
#include <torch/torch.h>

#include <cmath>

#include "methods/omniquant_method.h"
#include "methods/omniquant_settings.h"
#include "model/quantized_block.h"
#include "pipeline/quantization_run.h"
#include "quant/lwc_quantizer.h"
#include "rundir/run_directory.h"
#include "small_run.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;

namespace {

using tessera_test::kStories;

class OmniquantEvents : public rundir::EventSink {
 public:
  void on_event(const rundir::RunEvent& e) override {
    if (e.kind == rundir::RunEvent::Kind::Log) logs += e.message + "\n";
    if (e.kind == rundir::RunEvent::Kind::StepLoss) ++step_losses;
  }
  std::string logs;
  int step_losses = 0;
};

pipeline::RunConfig omniquant_run(const std::string& model, const std::string& calib, const std::string& method) {
  auto c = tessera_test::small_run(model, calib, method, 2);
  c.settings.set("omniquant", "epochs", 3);
  c.settings.set("tesseraq", "log_every", 1);
  return c;
}

}  // namespace

class TestOmniquant : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void lwcWithOpenClipsIsRtnAndTrainsThroughTheScale() {
    torch::manual_seed(4);
    const auto w = torch::randn({12, 80}) * 0.05;  // ragged last group (80 = 2 x 32 + 16)
    for (const quant::WeightQuantSpec spec : {quant::WeightQuantSpec{2, 32, false}, quant::WeightQuantSpec{4, 0, false},
                                              quant::WeightQuantSpec{3, 32, true}}) {
      const auto groups = spec.group_size ? 3 : 1;
      // sigmoid(30) == 1 in float: no clipping, so the grid and codes are RTN's.
      auto open = torch::full({12, groups}, 30.0);
      const auto rtn = quant::quantize_rtn(w, spec, "w");
      const auto lwc = quant::lwc_quantize(w, spec, open, open);
      QVERIFY(torch::equal(lwc.codes, rtn.codes));
      QVERIFY(torch::allclose(lwc.scale, rtn.scale));
      QVERIFY(torch::allclose(quant::lwc_fake_quantize(w, spec, open, open), quant::fake_quantize(w, spec)));
    }
    // At the init logits (4.0) the range shrinks by sigmoid(4) = 0.982 and gradients reach both
    // logits through the scale only.
    const quant::WeightQuantSpec spec{2, 32, false};
    auto gamma = torch::full({12, 3}, quant::kLwcInitLogit).set_requires_grad(true);
    auto beta = torch::full({12, 3}, quant::kLwcInitLogit).set_requires_grad(true);
    const auto grid = quant::lwc_grid(w, spec, gamma, beta);
    const auto rtn = quant::compute_grid(w, spec);
    QVERIFY(torch::allclose(grid.scale.detach(), rtn.scale * (1.0 / (1.0 + std::exp(-4.0))), 1e-5));
    auto target = torch::randn({12, 80}) * 0.05;
    (quant::lwc_fake_quantize(w, spec, gamma, beta) - target).pow(2).sum().backward();
    QVERIFY(gamma.grad().abs().sum().item<double>() > 0);
    QVERIFY(beta.grad().abs().sum().item<double>() > 0);
  }

  void letIsFunctionPreserving() {
    torch::manual_seed(8);
    model::LlamaConfig c;
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c.num_layers = 1;
    c.num_heads = 4;
    c.num_kv_heads = 4;
    c.head_dim = 8;
    c.vocab_size = 16;
    c.max_position_embeddings = 16;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    auto r = [](std::vector<std::int64_t> s) { return torch::randn(s) * 0.2; };
    model::DecoderBlockWeights w;
    w.input_norm = 1 + r({32});
    w.post_attention_norm = 1 + r({32});
    w.q_proj = r({32, 32});
    w.k_proj = r({32, 32});
    w.v_proj = r({32, 32});
    w.o_proj = r({32, 32});
    w.gate_proj = r({48, 32});
    w.up_proj = r({48, 32});
    w.down_proj = r({32, 48});
    methods::LetScales let;
    let.s1 = torch::rand({32}) + 0.5;
    let.s2 = torch::rand({32}) + 0.5;
    let.s3 = torch::rand({32}) + 0.5;
    let.s4 = torch::rand({16}) + 0.5;
    const auto rope = model::make_rope_tables(c, 12, torch::kCPU, torch::kFloat32);
    auto x = torch::randn({2, 12, 32});
    auto y0 = model::decoder_block_forward(c, w, x, rope);
    auto y1 = model::decoder_block_forward(c, let.apply(w, c), x, rope);
    const double rel = ((y1 - y0).norm() / y0.norm()).item<double>();
    QVERIFY2(rel < 1e-5, ("relative change " + std::to_string(rel)).c_str());
    QVERIFY(!torch::allclose(let.apply(w, c).q_proj, w.q_proj));
  }

  void omniquantAndTesseraqFromItBeatRtnOnStories260K() {
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(corpus, "text/tinystories/train-sample.txt");
    const auto base = tessera_test::fresh_temp_dir("omniquant");
    OmniquantEvents oq_events;
    const auto oq_cfg = omniquant_run(model, corpus, "omniquant");
    const auto oq = pipeline::run_quantization(oq_cfg, base + "/oq", false, oq_events);
    // 3 epochs of 8 one-sample steps per block, each reported (log_every 1); 40-epoch W2 default not used.
    QCOMPARE(oq_events.step_losses, 3 * 8 * static_cast<int>(oq.blocks));
    QVERIFY(oq_events.logs.find("augmented loss") != std::string::npos);  // W2: on by default
    for (std::size_t k = 0; k < oq.loss.size(); ++k) {
      std::printf("block %zu  loss RTN %.6g  OmniQuant %.6g\n", k, oq.loss_rtn[k], oq.loss[k]);
      QVERIFY(oq.loss[k] < oq.loss_rtn[k]);
    }
    const auto b0 = model::QuantizedBlock::load(rundir::RunDirectory(base + "/oq").block_path(0), oq_cfg.weight);
    QVERIFY(b0.method_state.count("omniquant.lwc_gamma.down_proj") == 1);
    QVERIFY(b0.method_state.count("omniquant.let.s1") == 0);  // weight-only: no LET

    auto tq_cfg = omniquant_run(model, corpus, "tesseraq");
    tq_cfg.settings.set("tesseraq", "init", "omniquant");
    tq_cfg.settings.set("tesseraq", "schedule", "0.5,0");
    tq_cfg.settings.set("tesseraq", "steps", 20);
    rundir::NullEventSink quiet;
    const auto tq = pipeline::run_quantization(tq_cfg, base + "/tq", false, quiet);
    // Block 0 starts from the same OmniQuant state (same seed and data), so TesseraQ must improve it.
    std::printf("block 0  OmniQuant %.6g  TesseraQ(OmniQuant init) %.6g\n", oq.loss[0], tq.loss[0]);
    QVERIFY(tq.loss[0] < oq.loss[0]);
    const auto t0 = model::QuantizedBlock::load(rundir::RunDirectory(base + "/tq").block_path(0), tq_cfg.weight);
    QVERIFY(t0.method_state.count("omniquant.lwc_beta.gate_proj") == 1 &&
            t0.method_state.count("tesseraq.dst.up_proj") == 1);
  }

  void letIsSkippedWithAReasonOnGroupedQueryAttention() {
    TESSERA_REQUIRE_DATA(model, kStories);  // 8 heads, 4 KV heads
    TESSERA_REQUIRE_DATA(corpus, "text/tinystories/train-sample.txt");
    auto cfg = omniquant_run(model, corpus, "omniquant");
    cfg.weight = {4, 0, false};
    cfg.act_bits = 4;  // LET "auto" would be on
    cfg.settings.set("omniquant", "epochs", 1);
    cfg.samples = 4;
    OmniquantEvents events;
    const auto run =
        pipeline::run_quantization(cfg, tessera_test::fresh_temp_dir("omniquant-gqa") + "/run", false, events);
    QVERIFY(events.logs.find("LET skipped: the model uses grouped-query attention") != std::string::npos);
    QVERIFY(run.loss[0] <= run.loss_rtn[0]);
  }

  void omniquantSettingsRoundTripAndValidate() {
    pipeline::RunConfig c;
    c.model = "m.bin";
    c.calib = "c.txt";
    c.method = "omniquant";
    c.settings.set("omniquant", "epochs", 7);
    c.settings.set("omniquant", "let", "on");
    c.settings.set("omniquant", "aug_loss", "off");
    c.settings.set("omniquant", "lwc_lr", 5e-3);
    c.validate();
    const auto back = pipeline::RunConfig::from_json_text(c.to_json_text(), "run.json");
    QCOMPARE(back.to_json_text(), c.to_json_text());
    QVERIFY(methods::omniquant_let(back) && !methods::omniquant_aug_loss(back) && methods::omniquant_epochs(back) == 7);
    pipeline::RunConfig d;
    d.weight.bits = 2;
    QVERIFY(methods::omniquant_epochs(d) == 40 && methods::omniquant_aug_loss(d) && !methods::omniquant_let(d));
    d.weight.bits = 3;
    d.act_bits = 4;
    QVERIFY(methods::omniquant_epochs(d) == 20 && !methods::omniquant_aug_loss(d) && methods::omniquant_let(d));
    auto bad = c;
    bad.settings.set("omniquant", "let", "maybe");
    TESSERA_VERIFY_THROWS_WITH(bad.validate(), "omniquant.let");
    bad = c;
    bad.settings.set("omniquant", "alpha", 1.5);
    TESSERA_VERIFY_THROWS_WITH(bad.validate(), "omniquant.alpha");
    bad = c;
    bad.train_dtype = "fp8";
    TESSERA_VERIFY_THROWS_WITH(bad.validate(), "train_dtype");
    // OmniQuant settings are part of the identity of OmniQuant runs and TesseraQ(OmniQuant) runs only.
    auto e = c;
    e.settings.set("omniquant", "epochs", 8);
    QVERIFY(e.identity_json() != c.identity_json());
    e.method = c.method = "awq";
    QCOMPARE(e.identity_json(), c.identity_json());
  }
};

TESSERA_TEST_MAIN(TestOmniquant, lwcWithOpenClipsIsRtnAndTrainsThroughTheScale, letIsFunctionPreserving,
                  omniquantAndTesseraqFromItBeatRtnOnStories260K, letIsSkippedWithAReasonOnGroupedQueryAttention,
                  omniquantSettingsRoundTripAndValidate)
#ifdef TESSERA_TEST_WITH_QT
#include "test_omniquant.moc"
#endif
