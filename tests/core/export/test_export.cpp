// Fake-quant Hugging Face export: bit-exact weights, same perplexity as the run, self-check that
// catches corruption, and nothing left behind on failure.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "api/export_jobs.h"
#include "api/model_jobs.h"
#include "export/fake_quant_export.h"
#include "export_test_support.h"
#include "io/safetensors.h"
#include "model/model_loader.h"
#include "model/quantized_block.h"
#include "pipeline/quantization_run.h"
#include "rundir/run_directory.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

// A W4 g32 RTN run of stories260K, made once per test process.
const std::string& w4_rtn_run() {
  static const std::string dir = tessera_test::rtn_run(4, "export-run");
  return dir;
}

}  // namespace

class TestExport : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void fp32ExportEvaluatesExactlyLikeTheRun() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    const auto run = w4_rtn_run();
    const auto out = tessera_test::fresh_temp_dir("export-fp32") + "/hf";
    const auto r = api::export_run({run, out, "hf", "fp32", false});
    QCOMPARE(r.tensors_checked, std::int64_t(5 * 7));
    QVERIFY(fs::exists(out + "/config.json") && fs::exists(out + "/tokenizer.bin"));
    QVERIFY(io::SafetensorsFile(out + "/model.safetensors").metadata().count("tessera_run") == 1);
    api::EvalRequest e;
    e.text_path = text;
    e.run_dir = run;
    const double from_run = api::evaluate_perplexity(e).perplexity;
    e.run_dir.clear();
    e.model_path = out;
    const double from_export = api::evaluate_perplexity(e).perplexity;
    std::printf("ppl run %.9f export %.9f (%lld bytes)\n", from_run, from_export, (long long)r.bytes);
    QCOMPARE(from_export, from_run);
  }

  void halfExportPassesSelfCheckAndIsSmaller() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto run = w4_rtn_run();
    const auto base = tessera_test::fresh_temp_dir("export-half");
    const auto full = api::export_run({run, base + "/fp32", "hf", "fp32", false});
    const auto half = api::export_run({run, base + "/fp16", "hf", "fp16", false});
    QCOMPARE(half.tensors_checked, std::int64_t(35));
    QVERIFY(half.bytes < full.bytes * 6 / 10);
  }

  void corruptedExportIsDetected() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto run = w4_rtn_run();
    const auto out = tessera_test::fresh_temp_dir("export-corrupt") + "/hf";
    api::export_run({run, out, "hf", "fp32", false});
    tessera_test::flip_bits_in_tensor(out + "/model.safetensors", "model.layers.3.mlp.up_proj.weight", 100, 0x40);
    TESSERA_VERIFY_THROWS_WITH(exporting::verify_fake_quant_hf(exporting::RunSource::load(run), out),
                               "model.layers.3.mlp.up_proj.weight");
    // The importer checks the recorded SHA-256 of every tensor.
    TESSERA_VERIFY_THROWS_WITH(model::load_model(out), "model.layers.3.mlp.up_proj.weight");
  }

  void weightActivationRunExportSaysWhatItDoesNotCarry() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    pipeline::RunConfig c;
    c.model = model;
    c.calib = tessera_test::shared_data("text/tinystories/train-sample.txt");
    c.method = "rtn";
    c.weight = {4, 32, false};
    c.act_bits = 4;
    c.samples = 4;
    c.seq_len = 64;
    const auto base = tessera_test::fresh_temp_dir("export-w4a4");
    rundir::NullEventSink quiet;
    pipeline::run_quantization(c, base + "/run", false, quiet);
    const auto r = api::export_run({base + "/run", base + "/gptq", "gptq", "fp32", false});
    QCOMPARE(r.warnings.size(), std::size_t(1));
    QVERIFY2(r.warnings[0].find("activations to 4 bits per token") != std::string::npos, r.warnings[0].c_str());
    QVERIFY(api::export_run({w4_rtn_run(), base + "/weight-only", "gptq", "fp32", false}).warnings.empty());
  }

  void failedExportLeavesNothing() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto run = w4_rtn_run();
    const auto base = tessera_test::fresh_temp_dir("export-fail");
    // Unwritable destination: a path below a regular file.
    std::ofstream(base + "/file") << "x";
    TESSERA_VERIFY_THROWS_WITH(api::export_run({run, base + "/file/hf", "hf", "fp16", false}), "cannot create");
    // An existing destination is not overwritten without --force.
    fs::create_directories(base + "/taken");
    TESSERA_VERIFY_THROWS_WITH(api::export_run({run, base + "/taken", "hf", "fp16", false}), "already exists");
    TESSERA_VERIFY_THROWS_WITH(api::export_run({run, base + "/x", "onnx", "fp16", false}), "unknown export format");
    std::size_t entries = 0;
    for (const auto& e : fs::directory_iterator(base)) {
      (void)e;
      ++entries;
    }
    QCOMPARE(entries, std::size_t(2));  // "file" and "taken" only: no temporary folders left
  }

  // A block file that does not hold what the run says (codes beyond the run's bits, a zero point
  // that is not one, a scale of the wrong shape) is refused by every reader, naming file and
  // tensor; it was exported with "self-check passed" before.
  void corruptedBlockFilesAreRefused() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    const auto run = tessera_test::rtn_run(2, "export-corrupt-block");
    rundir::RunDirectory rd(run);
    const auto good = model::QuantizedBlock::load(rd.block_path(1), {2, 32, false});
    auto write = [&](const std::function<void(quant::QuantizedLinear&)>& corrupt) {
      auto b = good;
      auto& q = b.linears.at(model::LinearKind::V);
      q.codes = q.codes.clone();  // the copy shares its tensors with `good`
      q.scale = q.scale.clone();
      q.zero = q.zero.clone();
      corrupt(q);
      b.save(rd.block_path(1), {});
    };
    const auto out = tessera_test::fresh_temp_dir("export-corrupt-block-out");
    write([](quant::QuantizedLinear& q) { q.codes[0][0] = 200; });
    TESSERA_VERIFY_THROWS_WITH(api::export_run({run, out + "/hf", "hf", "fp32", false}),
                               "v_proj.codes holds 200, out of range for the run's 2-bit codes (0..3)");
    TESSERA_VERIFY_THROWS_WITH(tessera_test::perplexity(run, "", text), "block_001");
    write([](quant::QuantizedLinear& q) { q.zero[0][0] = 1.5; });
    TESSERA_VERIFY_THROWS_WITH(api::export_run({run, out + "/gptq", "gptq", "fp32", false}),
                               "v_proj.zero holds values that are not integer zero points");
    write([](quant::QuantizedLinear& q) { q.scale = q.scale.narrow(1, 0, 1).contiguous(); });
    TESSERA_VERIFY_THROWS_WITH(api::export_run({run, out + "/hf", "hf", "fp32", false}), "v_proj.scale is not an fp32");
    QVERIFY(!fs::exists(out + "/hf") && !fs::exists(out + "/gptq"));
  }
};

TESSERA_TEST_MAIN(TestExport, fp32ExportEvaluatesExactlyLikeTheRun, halfExportPassesSelfCheckAndIsSmaller,
                  weightActivationRunExportSaysWhatItDoesNotCarry, corruptedExportIsDetected, failedExportLeavesNothing,
                  corruptedBlockFilesAreRefused)
#ifdef TESSERA_TEST_WITH_QT
#include "test_export.moc"
#endif
