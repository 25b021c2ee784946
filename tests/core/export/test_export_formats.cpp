// GPTQ and AWQ-GEMM exports of real stories260K runs (RTN, W4 g32 and W2 g32): each export, read
// back by `eval --model`, scores exactly the run's perplexity; the format list says why a format
// cannot hold a run; corruption is caught by the self-check and by the importer; failed exports
// leave nothing behind.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/export_jobs.h"
#include "api/model_jobs.h"
#include "export/packed_export.h"
#include "export/run_source.h"
#include "export_test_support.h"
#include "io/safetensors.h"
#include "model/model_loader.h"
#include "pipeline/quantization_run.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

std::string run_with(int bits, std::int64_t group = 32) {  // one run per setting and test process
  static std::map<std::pair<int, std::int64_t>, std::string> dirs;
  const auto key = std::make_pair(bits, group);
  if (!dirs.count(key))
    dirs[key] =
        tessera_test::rtn_run(bits, "export-formats-w" + std::to_string(bits) + "g" + std::to_string(group), group);
  return dirs[key];
}

}  // namespace

class TestExportFormats : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void formatListGivesReasons() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto w2 = run_with(2);
    QVERIFY(tessera_test::export_format(w2, "hf").available);
    QVERIFY(tessera_test::export_format(w2, "gptq").available);
    const auto awq = tessera_test::export_format(w2, "awq");
    QVERIFY(!awq.available);
    QVERIFY2(awq.reason.find("AWQ-GEMM holds 4-bit only") != std::string::npos, awq.reason.c_str());
    QVERIFY(tessera_test::export_format(run_with(4), "awq").available);
    const auto v1 = tessera_test::export_format(w2, "gptq-v1");
    QVERIFY2(v1.available || v1.reason.find("zero point of 0") != std::string::npos, v1.reason.c_str());
    const auto missing = tessera_test::export_format("/nonexistent-run", "gptq");
    QVERIFY(!missing.available && missing.reason.find("not a Tessera run") != std::string::npos);
  }

  void everyPackedExportScoresLikeTheRun() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    for (int bits : {4, 2, 3, 8}) {
      const auto run = run_with(bits);
      const double from_run = tessera_test::perplexity(run, "", text);
      for (const std::string id : {"gptq", "gptq-v1", "awq"}) {
        if (!tessera_test::export_format(run, id).available) continue;
        const auto out = tessera_test::fresh_temp_dir("export-" + id + std::to_string(bits)) + "/x";
        const auto r = api::export_run({run, out, id, "fp32", false});
        // stories260K's down_proj (172 inputs) never fits g32, gate/up (172 outputs) only fill whole
        // qzeros words at 8 bits (172 * 8 = 43 words); q/k/v/o are packed at every width.
        QCOMPARE(r.not_converted.size(), std::size_t(bits == 8 ? 5 : 15));
        QVERIFY(r.self_check.find(bits == 8 ? "30 packed layers" : "20 packed layers") == 0);
        const double from_export = tessera_test::perplexity("", out, text);
        std::printf("W%d %s: ppl run %.9f export %.9f, %lld bytes\n  self-check: %s\n", bits, id.c_str(), from_run,
                    from_export, (long long)r.bytes, r.self_check.c_str());
        QCOMPARE(from_export, from_run);
      }
    }
  }

  void perChannelRunIsGroupSizeMinusOne() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    const auto run = run_with(4, 0);
    QVERIFY(!tessera_test::export_format(run, "awq").available);
    const auto out = tessera_test::fresh_temp_dir("export-gptq-per-channel") + "/x";
    api::export_run({run, out, "gptq", "fp32", false});
    std::ifstream in(out + "/quantize_config.json");
    QCOMPARE(nlohmann::json::parse(in)["group_size"].get<int>(), -1);
    QCOMPARE(tessera_test::perplexity("", out, text), tessera_test::perplexity(run, "", text));
  }

  void halfScalesPassTheSelfCheck() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto out = tessera_test::fresh_temp_dir("export-gptq-fp16") + "/x";
    const auto r = api::export_run({run_with(4), out, "gptq", "fp16", false});
    QVERIFY2(r.self_check.find("scales the run's in F16") != std::string::npos, r.self_check.c_str());
    std::ifstream in(out + "/quantize_config.json");
    const auto qc = nlohmann::json::parse(in);
    QCOMPARE(qc["checkpoint_format"].get<std::string>(), std::string("gptq_v2"));
    QCOMPARE(qc["bits"].get<int>(), 4);
    QCOMPARE(qc["group_size"].get<int>(), 32);
    QVERIFY(qc["meta"].contains("layer_errors"));
    // transformers/optimum: only these Linears of each block are QuantLinears.
    QCOMPARE(qc["modules_in_block_to_quantize"].dump(),
             std::string(R"([["self_attn.k_proj","self_attn.o_proj","self_attn.q_proj","self_attn.v_proj"]])"));
    QCOMPARE(qc["modules_to_not_convert"].size(), std::size_t(15));
    QCOMPARE(io::SafetensorsFile(out + "/model.safetensors").metadata().at("format"), std::string("pt"));
  }

  void corruptionIsDetected() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto run = run_with(4);
    const auto out = tessera_test::fresh_temp_dir("export-corrupt-packed") + "/x";
    api::export_run({run, out, "awq", "fp16", false});
    const auto source = exporting::RunSource::load(run);
    exporting::verify_packed(source, out);  // intact: passes
    tessera_test::flip_bits_in_tensor(out + "/model.safetensors", "model.layers.2.self_attn.k_proj.qweight", 5, 0x10);
    TESSERA_VERIFY_THROWS_WITH(exporting::verify_packed(source, out), "model.layers.2.self_attn.k_proj.qweight");
    TESSERA_VERIFY_THROWS_WITH(model::load_model(out), "model.layers.2.self_attn.k_proj.qweight");
    // Truncated: the safetensors reader refuses it in both paths.
    fs::resize_file(out + "/model.safetensors", fs::file_size(out + "/model.safetensors") - 100);
    TESSERA_VERIFY_THROWS_WITH(exporting::verify_packed(source, out), "truncated");
    TESSERA_VERIFY_THROWS_WITH(model::load_model(out), "truncated");
  }

  // A config.json whose quantization_config lies: group sizes of 0 and -1 for AWQ (a division by
  // zero before), bits of 3.9 (read as 3 before), a string for an integer.
  void lyingQuantizationConfigIsRefused() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto out = tessera_test::fresh_temp_dir("export-lying-config") + "/awq";
    api::export_run({run_with(4), out, "awq", "fp16", false});
    const auto config_path = out + "/config.json";
    nlohmann::json good;
    std::ifstream(config_path) >> good;
    const std::vector<std::pair<nlohmann::json, std::string>> lies = {
        {{{"group_size", 0}}, "neither positive nor -1"},
        {{{"group_size", -1}}, "AWQ needs a positive group_size"},
        {{{"bits", 3.9}}, "\"bits\" is 3.9, expected an integer"},
        {{{"group_size", "32"}}, "\"group_size\" is \"32\", expected an integer"},
    };
    for (const auto& [patch, message] : lies) {
      auto config = good;
      config["quantization_config"].merge_patch(patch);
      std::ofstream(config_path) << config.dump();
      TESSERA_VERIFY_THROWS_WITH(model::load_model(out), message);
    }
  }

  void failedExportsLeaveNothing() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto base = tessera_test::fresh_temp_dir("export-fail-packed");
    const auto w2 = run_with(2);
    // A format that cannot hold the run is refused before anything is written.
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w2, base + "/awq", "awq", "fp16", false}), "4-bit only");
    // A parent folder that does not exist, and a location nobody may write (/proc, even as root).
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w2, base + "/no/such/dir", "gptq", "fp16", false}), "does not exist");
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w2, "/proc/tessera-export-test", "gptq", "fp16", false}),
                               "cannot create");
    QVERIFY(!fs::exists("/proc/tessera-export-test"));
    // Cancelled once writing has begun (the progress callback stands in for the GUI's cancel button).
    StopToken stop;
    TESSERA_VERIFY_THROWS_WITH(api::export_run(
                                   {w2, base + "/cancelled", "gptq", "fp16", false},
                                   [&](const api::ExportProgress&) { stop.request_stop(); }, stop),
                               "cancelled");
    QVERIFY(fs::is_empty(base));
  }
};

TESSERA_TEST_MAIN(TestExportFormats, formatListGivesReasons, everyPackedExportScoresLikeTheRun,
                  perChannelRunIsGroupSizeMinusOne, halfScalesPassTheSelfCheck, corruptionIsDetected,
                  lyingQuantizationConfigIsRefused, failedExportsLeaveNothing)
#ifdef TESSERA_TEST_WITH_QT
#include "test_export_formats.moc"
#endif
