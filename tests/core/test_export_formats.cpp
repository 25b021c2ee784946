// GPTQ and AWQ-GEMM exports of real stories260K runs (RTN, W4 g32 and W2 g32): each export, read
// back by `eval --model`, scores exactly the run's perplexity; the format list says why a format
// cannot hold a run; corruption is caught by the self-check and by the importer; failed exports
// leave nothing behind.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "api/export_jobs.h"
#include "api/model_jobs.h"
#include "export/packed_export.h"
#include "export/run_source.h"
#include "io/safetensors.h"
#include "model/model_loader.h"
#include "pipeline/quantization_run.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

// An RTN run of stories260K with `bits` and group 32, made once per test process.
std::string run_with(int bits) {
  static std::map<int, std::string> dirs;
  if (dirs.count(bits)) return dirs[bits];
  pipeline::RunConfig c;
  c.model = tessera_test::shared_data("models/stories260K/stories260K.bin");
  c.calib = tessera_test::shared_data("text/tinystories/train-sample.txt");
  c.method = "rtn";
  c.weight = {bits, 32, false};
  c.samples = 4;
  c.seq_len = 64;
  const auto dir = tessera_test::fresh_temp_dir("export-formats-w" + std::to_string(bits)) + "/run";
  pipeline::NullEventSink quiet;
  pipeline::run_quantization(c, dir, false, quiet);
  return dirs[bits] = dir;
}

double ppl(const std::string& run_dir, const std::string& model, const std::string& text) {
  api::EvalRequest e;
  e.text_path = text;
  e.run_dir = run_dir;
  e.model_path = model;
  return api::evaluate_perplexity(e).perplexity;
}

api::ExportFormatInfo info(const std::string& run, const std::string& id) {
  for (const auto& f : api::export_formats_for_run(run))
    if (f.id == id) return f;
  return {};
}

// Flips one bit of the byte `offset` bytes into tensor `name`'s data.
void flip_byte(const std::string& file, const std::string& name, std::size_t offset) {
  std::size_t at = 0;
  {
    io::SafetensorsFile f(file);
    const std::uint8_t* start = f.tensors().begin()->second.data;
    for (const auto& [n, t] : f.tensors()) start = std::min(start, t.data);
    std::ifstream in(file, std::ios::binary);
    std::uint64_t header = 0;
    in.read(reinterpret_cast<char*>(&header), 8);
    at = 8 + header + static_cast<std::size_t>(f.tensor(name).data - start) + offset;
  }
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(at));
  char byte = 0;
  io.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x10);
  io.seekp(static_cast<std::streamoff>(at));
  io.write(&byte, 1);
}

}  // namespace

class TestExportFormats : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void formatListGivesReasons() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto w2 = run_with(2);
    QVERIFY(info(w2, "hf").available);
    QVERIFY(info(w2, "gptq").available);
    const auto awq = info(w2, "awq");
    QVERIFY(!awq.available);
    QVERIFY2(awq.reason.find("AWQ-GEMM holds 4-bit only") != std::string::npos, awq.reason.c_str());
    QVERIFY(info(run_with(4), "awq").available);
    const auto v1 = info(w2, "gptq-v1");
    QVERIFY2(v1.available || v1.reason.find("zero point of 0") != std::string::npos, v1.reason.c_str());
    const auto missing = info("/nonexistent-run", "gptq");
    QVERIFY(!missing.available && missing.reason.find("not a Tessera run") != std::string::npos);
  }

  void everyPackedExportScoresLikeTheRun() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    for (int bits : {4, 2}) {
      const auto run = run_with(bits);
      const double from_run = ppl(run, "", text);
      for (const std::string id : {"gptq", "gptq-v1", "awq"}) {
        if (!info(run, id).available) continue;
        const auto out = tessera_test::fresh_temp_dir("export-" + id + std::to_string(bits)) + "/x";
        const auto r = api::export_run({run, out, id, "fp32", false});
        // stories260K's gate/up (172 outputs) and down (172 inputs) do not fit; q/k/v/o are packed.
        QCOMPARE(r.not_converted.size(), std::size_t(5 * 3));
        QVERIFY(r.self_check.find("20 packed layers") == 0);
        const double from_export = ppl("", out, text);
        std::printf("W%d %s: ppl run %.9f export %.9f, %lld bytes\n  self-check: %s\n", bits, id.c_str(), from_run,
                    from_export, (long long)r.bytes, r.self_check.c_str());
        QCOMPARE(from_export, from_run);
      }
    }
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
    QCOMPARE(io::SafetensorsFile(out + "/model.safetensors").metadata().at("format"), std::string("pt"));
  }

  void corruptionIsDetected() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto run = run_with(4);
    const auto out = tessera_test::fresh_temp_dir("export-corrupt-packed") + "/x";
    api::export_run({run, out, "awq", "fp16", false});
    const auto source = exporting::RunSource::load(run);
    exporting::verify_packed(source, out);  // intact: passes
    flip_byte(out + "/model.safetensors", "model.layers.2.self_attn.k_proj.qweight", 5);
    TESSERA_VERIFY_THROWS_WITH(exporting::verify_packed(source, out), "model.layers.2.self_attn.k_proj.qweight");
    TESSERA_VERIFY_THROWS_WITH(model::load_model(out), "model.layers.2.self_attn.k_proj.qweight");
    // Truncated: the safetensors reader refuses it in both paths.
    fs::resize_file(out + "/model.safetensors", fs::file_size(out + "/model.safetensors") - 100);
    TESSERA_VERIFY_THROWS_WITH(exporting::verify_packed(source, out), "truncated");
    TESSERA_VERIFY_THROWS_WITH(model::load_model(out), "truncated");
  }

  void failedExportsLeaveNothing() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto base = tessera_test::fresh_temp_dir("export-fail-packed");
    const auto w2 = run_with(2);
    // A format that cannot hold the run is refused before anything is written.
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w2, base + "/awq", "awq", "fp16", false}), "4-bit only");
    // A parent folder that does not exist, and a location nobody may write (/proc, even as root).
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w2, base + "/no/such/dir", "gptq", "fp16", false}), "does not exist");
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w2, "/proc/tessera-export-test", "gptq", "fp16", false}), "cannot create");
    QVERIFY(!fs::exists("/proc/tessera-export-test"));
    // Cancelled once writing has begun (the progress callback stands in for the GUI's cancel button).
    StopToken stop;
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w2, base + "/cancelled", "gptq", "fp16", false},
                                               [&](const api::ExportProgress&) { stop.request_stop(); }, stop),
                               "cancelled");
    QVERIFY(fs::is_empty(base));
  }
};

TESSERA_TEST_MAIN(TestExportFormats, formatListGivesReasons, everyPackedExportScoresLikeTheRun,
                  halfScalesPassTheSelfCheck, corruptionIsDetected, failedExportsLeaveNothing)
#ifdef TESSERA_TEST_WITH_QT
#include "test_export_formats.moc"
#endif
