// Quantizers, calibration sampling, AWQ's function-preserving transform, and resumable runs.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/model_jobs.h"
#include "calibration_inputs.h"
#include "methods/awq_method.h"
#include "model/model_loader.h"
#include "pipeline/quantization_run.h"
#include "pipeline/run_config.h"
#include "quant/activation_quantizer.h"
#include "quant/codebook_grid.h"
#include "quant/grid_target.h"
#include "quant/group_quantizer.h"
#include "resume_check.h"
#include "rundir/run_directory.h"
#include "runtime/finite_check.h"
#include "small_run.h"
#include "tessera_test.h"
#include "test_data.h"
#include "text/calibration.h"
#include "text/tokenizer_loader.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

using tessera_test::kStories;

// A line-by-line transcription of llama.cpp's IQ4_NL quantizer for one block of 32 without an
// importance matrix (ggml-quants.c quantize_row_iq4_nl_impl, super-block = block = 32, ntry 7):
// returns its fp32 scale before the fp16 store, and its codes.
float ggml_iq4_nl_block(const float* x, std::uint8_t* codes) {
  const auto& values = quant::kIq4NlLevels;
  auto best_index = [&](float v) {  // best_index_int8
    if (v <= values[0]) return 0;
    if (v >= values[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
      const int mav = (ml + mu) / 2;
      if (v < values[mav])
        mu = mav;
      else
        ml = mav;
    }
    return v - values[mu - 1] < values[mu] - v ? mu - 1 : mu;
  };
  float weight[32], amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    weight[j] = x[j] * x[j];
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  float d = -max / values[0], id = 1 / d, sumqx = 0, sumq2 = 0;
  for (int j = 0; j < 32; ++j) {
    const float q = values[best_index(id * x[j])];
    sumqx += weight[j] * q * x[j];
    sumq2 += weight[j] * q * q;
  }
  d = sumqx / sumq2;
  float best = d * sumqx;
  for (int itry = -7; itry <= 7; ++itry) {
    id = (itry + values[0]) / max;
    sumqx = sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const float q = values[best_index(id * x[j])];
      sumqx += weight[j] * q * x[j];
      sumq2 += weight[j] * q * q;
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  id = d ? 1 / d : 0;
  for (int j = 0; j < 32; ++j) codes[j] = static_cast<std::uint8_t>(best_index(id * x[j]));
  return d;
}

pipeline::RunConfig three_bit_run(const std::string& model, const std::string& calib, const std::string& method) {
  return tessera_test::small_run(model, calib, method, 3);
}

}  // namespace

class TestQuantization : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void handComputedTwoBitGroup() {
    // s = (1 - (-1)) / 3 = 2/3; z = -round(-1 / s) = -round(-1.5) = 2 (half to even);
    // w/s = [-1.5, -0.3, 0.45, 1.5] -> round [-2, 0, 0, 2] + 2 = [0, 2, 2, 4 -> clamp 3].
    auto w = torch::tensor({{-1.0f, -0.2f, 0.3f, 1.0f}});
    quant::WeightQuantSpec spec{2, 4, false};
    const auto q = quant::quantize_rtn(w, spec, "example");
    QVERIFY(torch::equal(q.codes, torch::tensor({{0, 2, 2, 3}}, torch::kUInt8)));
    QCOMPARE(q.zero.item<float>(), 2.0f);
    TESSERA_COMPARE_RELATIVE(q.scale.item<double>(), 2.0 / 3.0, 1e-6);
    auto deq = q.dequantize();
    QVERIFY(torch::allclose(deq, torch::tensor({{-4.0f / 3, 0.0f, 0.0f, 2.0f / 3}}), 1e-6, 1e-6));
  }

  void roundTripErrorIsAtMostHalfAStep() {
    torch::manual_seed(1);
    auto w = torch::randn({64, 256});
    for (int bits = 2; bits <= 8; ++bits) {
      quant::WeightQuantSpec spec{bits, 32, false};
      const auto q = quant::quantize_rtn(w, spec, "w");
      QVERIFY(q.codes.max().item<int>() <= (1 << bits) - 1);
      auto step = quant::expand_groups(q.scale, 32, 256);
      auto err = (w - q.dequantize()).abs();
      QVERIFY2((err <= step * 0.5 + 1e-6).all().item<bool>(), ("bits " + std::to_string(bits)).c_str());
    }
  }

  void constantAndOneSignedGroupsAreRepresented() {
    auto w = torch::tensor({{0.5f, 0.5f, 0.5f, 0.5f, 1.0f, 1.1f, 1.2f, 1.3f, -2.0f, -1.0f, -3.0f, -2.5f}});
    quant::WeightQuantSpec spec{3, 4, false};
    const auto q = quant::quantize_rtn(w, spec, "w");
    auto step = quant::expand_groups(q.scale, 4, 12);
    QVERIFY(((w - q.dequantize()).abs() <= step * 0.5 + 1e-6).all().item<bool>());
    QCOMPARE(q.dequantize()[0][0].item<float>(), 0.5f);  // constant group reproduced exactly
  }

  void raggedLastGroupHasItsOwnRange() {
    torch::manual_seed(2);
    auto w = torch::randn({8, 172});  // stories260K's ffn: 172 = 5 x 32 + 12
    w.narrow(1, 160, 12).mul_(10);    // a different range in the tail group
    quant::WeightQuantSpec spec{4, 32, false};
    const auto q = quant::quantize_rtn(w, spec, "down_proj");
    QCOMPARE(q.scale.size(1), std::int64_t(6));
    auto tail = w.narrow(1, 160, 12);
    auto expected = (std::get<0>(tail.max(1)).clamp_min(0) - std::get<0>(tail.min(1)).clamp_max(0)) / 15.0;
    QVERIFY(torch::allclose(q.scale.select(1, 5), expected));
    auto step = quant::expand_groups(q.scale, 32, 172);
    QVERIFY(((w - q.dequantize()).abs() <= step * 0.5 + 1e-5).all().item<bool>());
  }

  void perChannelIsOneGroupPerRow() {
    torch::manual_seed(3);
    auto w = torch::randn({16, 100});
    const auto q = quant::quantize_rtn(w, {4, 0, false}, "w");
    QCOMPARE(q.scale.size(1), std::int64_t(1));
    TESSERA_COMPARE_RELATIVE(q.scale[3][0].item<double>(),
                             (w[3].max().item<double>() - w[3].min().item<double>()) / 15.0, 1e-6);
  }

  void symmetricZeroIsMidpoint() {
    auto w = torch::tensor({{-0.7f, 0.1f, 0.35f, 0.2f}});
    const auto q = quant::quantize_rtn(w, {4, 4, true}, "w");
    QCOMPARE(q.zero.item<float>(), 8.0f);
    TESSERA_COMPARE_RELATIVE(q.scale.item<double>(), 0.7 / 7.0, 1e-6);
  }

  void nonFiniteWeightsAreRejected() {
    auto w = torch::ones({4, 8});
    w[1][3] = std::numeric_limits<float>::quiet_NaN();
    TESSERA_VERIFY_THROWS_WITH(quant::quantize_rtn(w, {4, 8, false}, "block 2 up_proj"),
                               "block 2 up_proj: weight contains NaN");
    w[1][3] = std::numeric_limits<float>::infinity();
    TESSERA_VERIFY_THROWS_WITH(quant::quantize_rtn(w, {4, 8, false}, "w"), "NaN or infinite");
    TESSERA_VERIFY_THROWS_WITH(quant::quantize_rtn(torch::ones({2, 2}), {9, 2, false}, "w"), "between 2 and 8");
    // runtime::all_finite checks in slices of 2^17 elements: a value in the last, ragged slice, one
    // in a middle slice, and a transposed (non-contiguous) view are all seen.
    auto big = torch::ones({700, 1000});
    QVERIFY(runtime::all_finite(big));
    QVERIFY(runtime::all_finite(big.t()));
    big[699][999] = std::numeric_limits<float>::quiet_NaN();
    QVERIFY(!runtime::all_finite(big));
    QVERIFY(!runtime::all_finite(big.t()));
    big[699][999] = 1.0f;
    big[300][7] = -std::numeric_limits<float>::infinity();
    QVERIFY(!runtime::all_finite(big.to(torch::kFloat16)));
    QVERIFY(runtime::all_finite(torch::zeros({3}, torch::kInt64)));
  }

  void activationQuantizerIsPerTokenWithStraightThroughGradient() {
    auto x = torch::tensor({{0.0f, 1.0f, 2.0f, 3.0f}, {0.0f, 10.0f, 20.0f, 30.0f}}).requires_grad_(true);
    auto y = quant::fake_quantize_per_token(x, 2);  // 4 levels per token: exactly representable here
    QVERIFY(torch::allclose(y, x, 1e-5, 1e-5));
    y.sum().backward();
    QVERIFY(torch::equal(x.grad(), torch::ones_like(x)));
    auto z = quant::fake_quantize_per_token(torch::tensor({{0.0f, 0.4f, 3.0f}}), 2);  // step 1 -> 0.4 to 0
    QCOMPARE(z[0][1].item<float>(), 0.0f);
  }

  void calibrationIsSeeded() {
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(corpus, "text/tinystories/train-sample.txt");
    auto tok = text::load_tokenizer(text::find_tokenizer_for_model(model));
    const auto a = text::sample_calibration(*tok, corpus, 16, 128, 42);
    const auto b = text::sample_calibration(*tok, corpus, 16, 128, 42);
    const auto c = text::sample_calibration(*tok, corpus, 16, 128, 43);
    QVERIFY(a.offsets == b.offsets);
    QCOMPARE(a.token_sha256, b.token_sha256);
    QVERIFY(a.offsets != c.offsets);
    QVERIFY(a.token_sha256 != c.token_sha256);
    QCOMPARE(a.tokens.size(), std::size_t(16 * 128));
  }

  void calibrationReadsJsonLinesAndRejectsEmptyCorpora() {
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(c4, "text/c4/c4_validation_2k.jsonl");
    auto tok = text::load_tokenizer(text::find_tokenizer_for_model(model));
    const auto set = text::sample_calibration(*tok, c4, 4, 256, 1);
    QVERIFY(set.corpus_tokens > 1000000);
    const auto dir = tessera_test::fresh_temp_dir("calib-bad");
    std::ofstream(dir + "/empty.txt") << "";
    TESSERA_VERIFY_THROWS_WITH(text::sample_calibration(*tok, dir + "/empty.txt", 4, 64, 1), "is empty");
    std::ofstream(dir + "/bad.jsonl") << "{\"text\": \"fine\"}\n{\"title\": 3}\n";
    TESSERA_VERIFY_THROWS_WITH(text::sample_calibration(*tok, dir + "/bad.jsonl", 4, 64, 1), "bad.jsonl:2");
  }

  void awqScalingPreservesTheBlockFunction() {
    TESSERA_REQUIRE_DATA(model_path, kStories);
    TESSERA_REQUIRE_DATA(corpus, "text/tinystories/train-sample.txt");
    auto model = model::load_model(model_path);
    auto x = tessera_test::calibration_inputs(model, model_path, corpus, 4, 64);
    auto cfg = three_bit_run(model_path, corpus, "awq");
    cfg.settings.set("awq", "clip", false);
    const auto ctx = tessera_test::block0_context(model, cfg, x);
    methods::AwqMethod awq;
    const auto& original = model.weights().blocks[0];
    const auto q = awq.quantize_block(original, ctx);
    QVERIFY(q.method_state.count("awq.scale.qkv") == 1);
    QVERIFY(q.method_state.count("awq.scale.o") == 0);                          // GQA: v->o skipped
    QVERIFY(!torch::equal(q.float_reference.input_norm, original.input_norm));  // scales were applied
    auto y0 = model::decoder_block_forward(model.config(), original, x, ctx.rope);
    auto y1 = model::decoder_block_forward(model.config(), q.float_reference, x, ctx.rope);
    const double rel = ((y1 - y0).norm() / y0.norm()).item<double>();
    QVERIFY2(rel < 1e-5, ("relative change " + std::to_string(rel)).c_str());
  }

  void interruptedRunResumesToIdenticalCodes() {
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(corpus, "text/tinystories/train-sample.txt");
    tessera_test::verify_interrupted_run_resumes_identically(three_bit_run(model, corpus, "awq"),
                                                             tessera_test::fresh_temp_dir("resume"));
  }

  void resumeWithChangedSettingsIsRefused() {
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(corpus, "text/tinystories/train-sample.txt");
    const auto dir = tessera_test::fresh_temp_dir("resume-changed") + "/run";
    auto cfg = three_bit_run(model, corpus, "rtn");
    rundir::NullEventSink quiet;
    pipeline::run_quantization(cfg, dir, false, quiet);
    cfg.weight.bits = 4;
    TESSERA_VERIFY_THROWS_WITH(pipeline::run_quantization(cfg, dir, true, quiet), "settings: the run has");
    cfg.weight.bits = 3;
    cfg.seed = 7;  // different calibration windows
    TESSERA_VERIFY_THROWS_WITH(pipeline::run_quantization(cfg, dir, true, quiet), "calibration tokens");
  }

  // GGUF grid targets: scales rounded to fp16 values of the target's significant bits (11: exactly
  // fp16's round-to-nearest-even; 7 for Q4_1 so that -z*s, z < 16, is an fp16 value as well),
  // beyond fp16's range refused; the target in run.json only when set, consistent with wbits/group.
  void gridTargetsRoundScalesAndRoundTrip() {
    auto fp16_scales = [](int significant_bits) {
      quant::WeightQuantSpec spec;
      spec.scale_bits = significant_bits;
      return spec;
    };
    torch::manual_seed(9);
    const auto s =
        torch::cat({torch::rand({1000}) * 0.1, torch::rand({100}) * 1e-4, torch::tensor({1e-5f, 3.0e-7f, 65000.f})});
    const auto s11 = quant::representable_scales(s, fp16_scales(11));
    QVERIFY(torch::equal(s11, s.to(torch::kHalf).to(torch::kFloat32)));
    QVERIFY(torch::equal(quant::representable_scales(s, fp16_scales(0)), s));
    const auto s7 = quant::representable_scales(s, fp16_scales(7));
    const auto normal = s >= 6.2e-5;  // below, fp16's subnormal spacing 2^-24 limits the precision
    QVERIFY((((s7 - s).abs() / s).masked_select(normal) <= 1.0 / 128 + 1e-7).all().item<bool>());
    const auto moderate = s7.masked_select(s7 < 1000);  // z * 65000 is beyond fp16's range anyway
    for (int z = 0; z < 16; ++z) {
      const auto m = -z * moderate;
      QVERIFY2(torch::equal(m.to(torch::kHalf).to(torch::kFloat32), m), ("-z*s with z = " + std::to_string(z)).c_str());
    }
    // Straight-through: the gradient of the rounded scale is that of the scale.
    auto x = s.clone().set_requires_grad(true);
    quant::representable_scales(x, fp16_scales(7)).sum().backward();
    QVERIFY(torch::equal(x.grad(), torch::ones_like(s)));
    TESSERA_VERIFY_THROWS_WITH(quant::representable_scales(torch::tensor({70000.f}), fp16_scales(11)),
                               "beyond fp16's range");

    pipeline::RunConfig c;
    c.model = "m.bin";
    c.calib = "c.txt";
    QVERIFY(c.to_json_text().find("target") == std::string::npos);
    c.target = "gguf-q4_1";
    c.apply_target();
    QCOMPARE(c.weight.bits, 4);
    QCOMPARE(c.weight.group_size, std::int64_t(32));
    QCOMPARE(c.weight.scale_bits, 7);
    c.validate();
    const auto back = pipeline::RunConfig::from_json_text(c.to_json_text(), "run.json");
    QCOMPARE(back.target, std::string("gguf-q4_1"));
    QCOMPARE(back.weight.scale_bits, 7);
    QCOMPARE(back.identity_json(), c.identity_json());
    TESSERA_VERIFY_THROWS_WITH(
        pipeline::RunConfig::from_json_text(R"({"model":"m","calib":"c","target":"gguf-q4_0","wbits":3})", "x.json"),
        "target gguf-q4_0 is W4 g32 sym fp16-scales");
    TESSERA_VERIFY_THROWS_WITH(
        pipeline::RunConfig::from_json_text(R"({"model":"m","calib":"c","target":"gguf-q7_k"})", "x.json"),
        "unknown target \"gguf-q7_k\" (available: gguf-q4_0, gguf-q4_1");
    c.weight.bits = 3;
    TESSERA_VERIFY_THROWS_WITH(c.validate(), "target gguf-q4_1 is W4 g32 fp16-scales");
  }

  // k-quant targets: per row and 256 columns, the scales become d * k with d an fp16 value and k in
  // 1..n, the largest k = n (so that the export finds d as max / n); each moves by at most half a
  // step d / 2 (k >= 1 clamps tiny ones up); straight-through gradient; ragged rows refused.
  void kQuantScalesAreSuperBlockMultiples() {
    const auto* q3k = quant::find_grid_target("gguf-q3_k");
    QVERIFY(q3k != nullptr);
    const auto& spec = q3k->spec;  // groups of 16, k in 1..31
    torch::manual_seed(4);
    auto s = torch::rand({6, 48}) * 0.05 + 1e-4;  // 3 super-blocks of 16 groups per row
    const auto x = s.clone().set_requires_grad(true);
    const auto r = quant::representable_scales(x, spec);
    r.sum().backward();
    QVERIFY(torch::equal(x.grad(), torch::ones_like(s)));
    const auto blocks = r.detach().reshape({6, 3, 16});
    const auto d = std::get<0>(blocks.max(2, true)) / spec.superblock_levels;
    QVERIFY(torch::equal(d, d.to(torch::kHalf).to(torch::kFloat32)));
    const auto k = blocks / d;
    QVERIFY(torch::equal(k, torch::round(k)));
    QVERIFY((k >= 1).all().item<bool>() && (k <= spec.superblock_levels).all().item<bool>());
    // Each scale moves by at most half a step; those below half a step (k would be 0) become d.
    const auto orig = s.reshape({6, 3, 16});
    const auto small = orig < d / 2;
    QVERIFY(small.any().item<bool>());
    QVERIFY(((blocks - orig).abs() / d).masked_select(small.logical_not()).le(0.5 + 1e-4).all().item<bool>());
    QVERIFY(blocks.masked_select(small).eq(d.expand_as(blocks).masked_select(small)).all().item<bool>());
    TESSERA_VERIFY_THROWS_WITH(quant::representable_scales(torch::rand({2, 20}), spec), "super-blocks");
    // The grids of the methods land there too: RTN's compute_grid.
    const auto w = torch::randn({4, 512});
    const auto grid = quant::compute_grid(w, spec);
    const auto gd = std::get<0>(grid.scale.reshape({4, 2, 16}).max(2, true)) / spec.superblock_levels;
    QVERIFY(torch::equal(grid.scale.reshape({4, 2, 16}) / gd, torch::round(grid.scale.reshape({4, 2, 16}) / gd)));
    QVERIFY((grid.zero == 4).all().item<bool>());
  }

  // k-quants with mins (Q4_K): per row and 256 columns the group offsets become dmin * m, dmin an
  // fp16 value and m in 0..63, the largest m = 63; finding them again from z * s gives the same
  // values; the weight is q s - offset; on groups that do not straddle zero symmetrically the
  // offsets make RTN's error smaller than the symmetric codes with the same scales lattice.
  void kQuantOffsetsAreSuperBlockMultiples() {
    const auto& spec = quant::find_grid_target("gguf-q4_k")->spec;
    QVERIFY(spec.superblock_offsets() && !spec.symmetric);
    torch::manual_seed(9);
    const auto w = torch::randn({4, 512}) * 0.05 + torch::rand({4, 1}) * 0.04;
    const auto grid = quant::compute_grid(w, spec);
    const auto offsets = quant::group_offsets(grid.scale, grid.zero, spec);
    const auto blocks = offsets.reshape({4, 2, 8});
    const auto dmin = std::get<0>(blocks.max(2, true)) / spec.superblock_levels;
    QVERIFY(torch::equal(dmin, dmin.to(torch::kHalf).to(torch::kFloat32)));
    const auto m = blocks / dmin;
    QVERIFY(torch::equal(m, torch::round(m)));
    QVERIFY((m >= 0).all().item<bool>() && (m <= spec.superblock_levels).all().item<bool>());
    QVERIFY((grid.zero != torch::round(grid.zero)).any().item<bool>());
    // Idempotent: the offsets found from the stored zero points are the same values.
    QVERIFY(torch::equal(quant::group_offsets(grid.scale, offsets / grid.scale, spec), offsets));
    // Each offset is the group's -min to within half a step of dmin.
    const auto lo = torch::clamp_max(quant::group_min_max(w, 32).first, 0.0);
    QVERIFY(((offsets + lo).abs().reshape({4, 2, 8}) <= dmin / 2 * (1 + 1e-5)).all().item<bool>());
    // Codes, dequantization and fake quantization agree, in llama.cpp's order q s - offset.
    const auto q = quant::quantize_rtn(w, spec, "w");
    QVERIFY(torch::equal(q.zero, grid.zero));
    const auto expect =
        (q.codes.to(torch::kFloat32).view({4, 16, 32}) * q.scale.unsqueeze(2) - offsets.unsqueeze(2)).view({4, 512});
    QVERIFY(torch::equal(q.dequantize(), expect));
    QVERIFY(torch::equal(quant::fake_quantize(w, spec), expect));
    auto symmetric = spec;
    symmetric.symmetric = true;
    const double err = (q.dequantize() - w).pow(2).mean().item<double>(),
                 err_sym = (quant::fake_quantize(w, symmetric) - w).pow(2).mean().item<double>();
    std::printf("RTN mean squared error, Q4_K grid with mins %.4g, symmetric %.4g\n", err, err_sym);
    QVERIFY2(err < 0.6 * err_sym, (std::to_string(err) + " vs " + std::to_string(err_sym)).c_str());
  }

  // IQ4_NL (the Q2_K / Q3_K fallback): llama.cpp's own choice of scale per block, every weight on
  // the level nearest to it, codes = dequantization = fake quantization, and on Gaussian weights
  // less error than Q4_0's uniform levels at the same size.
  void iq4NlLevelsFollowLlamaCpp() {
    const auto spec = quant::iq4_nl_spec();
    torch::manual_seed(11);
    const std::int64_t rows = 64, cols = 256;
    const auto w = torch::randn({rows, cols}) * 0.02 + torch::randn({rows, 1}) * 0.01;
    const auto q = quant::quantize_rtn(w, spec, "w");
    QVERIFY(torch::equal(q.zero, torch::zeros_like(q.zero)));
    QVERIFY(torch::equal(q.scale, q.scale.to(torch::kHalf).to(torch::kFloat32)));  // fp16 scales
    const auto levels = torch::tensor(std::vector<float>(quant::kIq4NlLevels.begin(), quant::kIq4NlLevels.end()));
    const auto expect = levels.index({q.codes.to(torch::kLong)}) * quant::expand_groups(q.scale, 32, cols);
    QVERIFY(torch::equal(q.dequantize(), expect));
    QVERIFY(torch::equal(quant::fake_quantize(w, spec), expect));
    // Nearest level: no other level of the same scale is closer to the weight.
    const auto all = levels.view({1, 1, 16}) * quant::expand_groups(q.scale, 32, cols).unsqueeze(2);
    const auto closest = std::get<0>((all - w.unsqueeze(2)).abs().min(2));
    QVERIFY(((expect - w).abs() <= closest * (1 + 1e-6) + 1e-12).all().item<bool>());
    // The scales are llama.cpp's (the transcription above, stored as fp16): summation order may
    // move a near-tie between candidates, so most, not all, blocks must agree exactly.
    const auto wc = w.contiguous();
    std::int64_t same_scale = 0, same_codes = 0;
    std::uint8_t codes[32];
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t b = 0; b < cols / 32; ++b) {
        const float d = ggml_iq4_nl_block(wc.data_ptr<float>() + r * cols + b * 32, codes);
        same_scale += static_cast<float>(c10::Half(d)) == q.scale[r][b].item<float>();
        for (int j = 0; j < 32; ++j) same_codes += codes[j] == q.codes[r][b * 32 + j].item<std::uint8_t>();
      }
    std::printf("IQ4_NL: %lld of %lld block scales and %lld of %lld codes as llama.cpp's quantizer\n",
                (long long)same_scale, (long long)(rows * cols / 32), (long long)same_codes, (long long)(rows * cols));
    QVERIFY(same_scale >= rows * cols / 32 * 99 / 100);
    QVERIFY(same_codes >= rows * cols * 995 / 1000);
    const double
        err = (q.dequantize() - w).pow(2).mean().item<double>(),
        err_q40 =
            (quant::fake_quantize(w, quant::find_grid_target("gguf-q4_0")->spec) - w).pow(2).mean().item<double>();
    std::printf("RTN mean squared error, IQ4_NL %.4g, Q4_0 %.4g\n", err, err_q40);
    QVERIFY2(err < 0.9 * err_q40, (std::to_string(err) + " vs " + std::to_string(err_q40)).c_str());
    // Its gradient passes straight through (OmniQuant's LET trains through it).
    const auto x = w.clone().set_requires_grad(true);
    quant::fake_quantize(x, spec).sum().backward();
    QVERIFY(torch::equal(x.grad(), torch::ones_like(w)));
  }

  void runConfigRoundTripsAndNamesBadFields() {
    pipeline::RunConfig c;
    c.model = "m.bin";
    c.calib = "c.txt";
    c.method = "awq";
    c.weight = {3, 0, true};
    c.act_bits = 4;
    c.samples = 17;
    c.seed = 9;
    c.settings.set("awq", "clip", false);
    const auto back = pipeline::RunConfig::from_json_text(c.to_json_text(), "cfg");
    QCOMPARE(back.to_json_text(), c.to_json_text());
    QCOMPARE(back.weight.group_size, std::int64_t(0));
    QVERIFY(back.weight.symmetric && !back.settings.flag("awq", "clip"));
    TESSERA_VERIFY_THROWS_WITH(pipeline::RunConfig::from_json_text(R"({"wbit": 4})", "run.json"),
                               "unknown setting \"wbit\"");
    TESSERA_VERIFY_THROWS_WITH(pipeline::RunConfig::from_json_text(R"({"wbits": "four"})", "run.json"),
                               "\"wbits\" is \"four\", expected an integer");
    // Numbers that are not what they claim are refused, not truncated (found by fuzz_run_config).
    TESSERA_VERIFY_THROWS_WITH(pipeline::RunConfig::from_json_text(R"({"wbits": 3.9})", "run.json"),
                               "\"wbits\" is 3.9, expected an integer");
    TESSERA_VERIFY_THROWS_WITH(pipeline::RunConfig::from_json_text(R"({"wbits": 9e96})", "run.json"),
                               "expected an integer");
    TESSERA_VERIFY_THROWS_WITH(pipeline::RunConfig::from_json_text(R"({"wbits": 4294967298})", "run.json"),
                               "expected an integer in -2147483648..2147483647");
    TESSERA_VERIFY_THROWS_WITH(pipeline::RunConfig::from_json_text(R"({"seed": -1})", "run.json"), "\"seed\" is -1");
    TESSERA_VERIFY_THROWS_WITH(pipeline::RunConfig::from_json_text(R"({"symmetric": 1})", "run.json"),
                               "expected true or false");
    QCOMPARE(
        pipeline::RunConfig::from_json_text(R"({"tesseraq": {"lr": 2}})", "run.json").settings.number("tesseraq", "lr"),
        2.0);
    auto bad = c;
    bad.method = "gptq";
    TESSERA_VERIFY_THROWS_WITH(bad.validate(), "unknown method \"gptq\"");
    bad = c;
    bad.act_bits = 12;
    TESSERA_VERIFY_THROWS_WITH(bad.validate(), "abits");
    bad = c;
    bad.weight.bits = 1;
    TESSERA_VERIFY_THROWS_WITH(bad.validate(), "weight bits must be between 2 and 8");
    bad = c;
    bad.calib = "";
    TESSERA_VERIFY_THROWS_WITH(bad.validate(), "\"calib\"");
  }

  void w8RtnStaysWithinOnePercentOfFp() {
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(corpus, "text/tinystories/train-sample.txt");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    auto cfg = three_bit_run(model, corpus, "rtn");
    cfg.weight.bits = 8;
    const auto dir = tessera_test::fresh_temp_dir("w8") + "/run";
    rundir::NullEventSink quiet;
    pipeline::run_quantization(cfg, dir, false, quiet);
    api::EvalRequest r;
    r.text_path = text;
    r.model_path = model;
    const double fp = api::evaluate_perplexity(r).perplexity;
    r.run_dir = dir;
    const double w8 = api::evaluate_perplexity(r).perplexity;
    std::printf("ppl fp %.5f  W8 g32 RTN %.5f\n", fp, w8);
    QVERIFY2(std::fabs(w8 - fp) / fp < 0.01, (std::to_string(w8) + " vs " + std::to_string(fp)).c_str());
  }
};

TESSERA_TEST_MAIN(TestQuantization, handComputedTwoBitGroup, roundTripErrorIsAtMostHalfAStep,
                  constantAndOneSignedGroupsAreRepresented, raggedLastGroupHasItsOwnRange, perChannelIsOneGroupPerRow,
                  symmetricZeroIsMidpoint, nonFiniteWeightsAreRejected,
                  activationQuantizerIsPerTokenWithStraightThroughGradient, calibrationIsSeeded,
                  calibrationReadsJsonLinesAndRejectsEmptyCorpora, awqScalingPreservesTheBlockFunction,
                  interruptedRunResumesToIdenticalCodes, resumeWithChangedSettingsIsRefused,
                  gridTargetsRoundScalesAndRoundTrip, kQuantScalesAreSuperBlockMultiples,
                  kQuantOffsetsAreSuperBlockMultiples, iq4NlLevelsFollowLlamaCpp, runConfigRoundTripsAndNamesBadFields,
                  w8RtnStaysWithinOnePercentOfFp)
#ifdef TESSERA_TEST_WITH_QT
#include "test_quantization.moc"
#endif
