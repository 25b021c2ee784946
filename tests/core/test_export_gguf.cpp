// GGUF exports of stories260K runs: F32 re-imported (model and embedded vocabulary) scores exactly
// the run's perplexity; Q4_1/Q5_1 blocks are refused for real RTN runs (their fp32 scales are not
// fp16 values, so llama.cpp's q*d + m cannot reproduce (q - z) * s) and written, bit-exact, for a
// run whose scales and offsets are fp16 values; corruption and truncation are detected.
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "api/export_jobs.h"
#include "api/model_jobs.h"
#include "export/gguf_export.h"
#include "export/gguf_file.h"
#include "export/run_source.h"
#include "model/model_loader.h"
#include "pipeline/quantization_run.h"
#include "pipeline/run_directory.h"
#include "tessera_test.h"
#include "export_test_support.h"
#include "test_data.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

const std::string& w4_run() {
  static const std::string dir = tessera_test::rtn_run(4, "export-gguf-w4");
  return dir;
}

}  // namespace

class TestExportGguf : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void f32ScoresExactlyLikeTheRun() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    const auto run = w4_run();
    const auto out = tessera_test::fresh_temp_dir("export-gguf-f32") + "/m.gguf";
    const auto r = api::export_run({run, out, "gguf-f32", "fp32", false});
    QCOMPARE(r.tensors_checked, std::int64_t(35));
    exporting::GgufFile f(out);
    QCOMPARE(f.value("general.architecture").get<std::string>(), std::string("llama"));
    QCOMPARE(f.value("llama.block_count").get<int>(), 5);
    QCOMPARE(f.value("tokenizer.ggml.tokens").size(), std::size_t(512));
    QCOMPARE(f.value("tokenizer.ggml.tokens")[1].get<std::string>(), std::string("<s>"));
    QVERIFY(f.value("tessera.run").get<std::string>().find("layer_errors") != std::string::npos);
    QCOMPARE(f.tensor("blk.0.ffn_down.weight").ne, (std::vector<std::uint64_t>{172, 64}));  // ne[0] = inputs
    const double from_run = tessera_test::perplexity(run, "", text), from_export = tessera_test::perplexity("", out, text);
    std::printf("gguf-f32: ppl run %.9f export %.9f, %lld bytes\n  self-check: %s\n", from_run, from_export,
                (long long)r.bytes, r.self_check.c_str());
    QCOMPARE(from_export, from_run);
  }

  void f16PassesItsSelfCheck() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto out = tessera_test::fresh_temp_dir("export-gguf-f16") + "/m.gguf";
    const auto r = api::export_run({w4_run(), out, "gguf-f16", "fp16", false});
    QVERIFY2(r.self_check.find("35 F16") != std::string::npos, r.self_check.c_str());
  }

  void q41IsRefusedWhenNotExact() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto q41 = tessera_test::export_format(w4_run(), "gguf-q4_1");
    QVERIFY(!q41.available);
    QVERIFY2(q41.reason.find("none of the run's 35 layers would decode bit-identically") != std::string::npos,
             q41.reason.c_str());
    const auto q51 = tessera_test::export_format(w4_run(), "gguf-q5_1");
    QVERIFY2(!q51.available && q51.reason.find("5-bit asymmetric codes with a group size that is a multiple of 32") !=
                                   std::string::npos, q51.reason.c_str());
  }

  void blocksFromCodesAreExactWhenScalesAreHalfValues() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    for (int bits : {4, 5}) {
      const auto run = tessera_test::fp16_friendly_run(bits);
      const std::string id = bits == 4 ? "gguf-q4_1" : "gguf-q5_1";
      QVERIFY2(tessera_test::export_format(run, id).available, tessera_test::export_format(run, id).reason.c_str());
      const auto out = tessera_test::fresh_temp_dir("export-" + id) + "/m.gguf";
      const auto r = api::export_run({run, out, id, "fp32", false});
      // down_proj has 172 inputs, not whole 32-weight blocks: F32 in all 5 blocks.
      QCOMPARE(r.not_converted.size(), std::size_t(5));
      QVERIFY2(r.self_check.find("30 " + std::string(bits == 4 ? "Q4_1" : "Q5_1")) != std::string::npos, r.self_check.c_str());
      const double from_run = tessera_test::perplexity(run, "", text), from_export = tessera_test::perplexity("", out, text);
      std::printf("%s: ppl run %.9f export %.9f, %lld bytes\n  self-check: %s\n", id.c_str(), from_run, from_export,
                  (long long)r.bytes, r.self_check.c_str());
      QCOMPARE(from_export, from_run);
      if (bits == 4) {
        // A flipped bit in a block is caught by the self-check and by the importer; so is truncation.
        const auto source = exporting::RunSource::load(run);
        const auto at = exporting::GgufFile(out).tensor("blk.1.attn_v.weight").file_offset;
        tessera_test::flip_bits(out, at + 10, 0x01);  // inside the first block's nibbles
        TESSERA_VERIFY_THROWS_WITH(exporting::verify_gguf(source, out), "blk.1.attn_v.weight");
        TESSERA_VERIFY_THROWS_WITH(model::load_model(out), "corrupted");
        fs::resize_file(out, fs::file_size(out) - 64);
        TESSERA_VERIFY_THROWS_WITH(exporting::verify_gguf(source, out), "truncated");
        TESSERA_VERIFY_THROWS_WITH(model::load_model(out), "truncated");
      }
    }
  }

  void failedGgufExportLeavesNothing() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto base = tessera_test::fresh_temp_dir("export-gguf-fail");
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w4_run(), base + "/q.gguf", "gguf-q4_1", "fp32", false}),
                               "would decode bit-identically");
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w4_run(), "/proc/tessera-export-test.gguf", "gguf-f32", "fp32", false}),
                               "cannot create");
    std::ofstream(base + "/taken.gguf") << "x";
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w4_run(), base + "/taken.gguf", "gguf-f32", "fp32", false}),
                               "already exists");
    std::size_t entries = 0;
    for (const auto& e : fs::directory_iterator(base)) { (void)e; ++entries; }
    QCOMPARE(entries, std::size_t(1));
  }

  // Crafted headers of a real file: a count of 10^9 tensors, a head count of 0, arrays nested
  // without end. Each is a message naming the file and the field, never a crash.
  void craftedHeadersAreRefused() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto dir = tessera_test::fresh_temp_dir("export-gguf-crafted");
    const auto good = dir + "/good.gguf";
    api::convert_model(model, "", good, "fp32", false);
    std::string bytes;
    {
      std::ifstream in(good, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    auto write = [&](const std::string& name, const std::string& content) {
      std::ofstream(dir + "/" + name, std::ios::binary) << content;
      return dir + "/" + name;
    };
    auto tensors = bytes;
    const std::uint64_t billion = 1000000000;
    std::memcpy(&tensors[8], &billion, 8);  // after "GGUF" and the version
    TESSERA_VERIFY_THROWS_WITH(model::load_model(write("tensors.gguf", tensors)), "claims 1000000000 tensors");
    // The u32 value after the key "llama.attention.head_count" (its length, 26, in front) and its type.
    const std::string key = std::string("\x1a\0\0\0\0\0\0\0", 8) + "llama.attention.head_count";
    const auto at = bytes.find(key);
    QVERIFY(at != std::string::npos);
    auto heads = bytes;
    std::memset(&heads[at + key.size() + 4], 0, 4);
    TESSERA_VERIFY_THROWS_WITH(model::load_model(write("heads.gguf", heads)),
                               "llama.attention.head_count is 0, expected a positive integer");
    // A header whose one metadata entry is an array of arrays of ... (type 9) 100,000 levels deep.
    std::string nested("GGUF", 4);
    auto put32 = [&](std::uint32_t v) { nested.append(reinterpret_cast<const char*>(&v), 4); };
    auto put64 = [&](std::uint64_t v) { nested.append(reinterpret_cast<const char*>(&v), 8); };
    put32(3), put64(0), put64(1), put64(1), nested += "k", put32(9);
    for (int i = 0; i < 100000; ++i) put32(9), put64(1);
    TESSERA_VERIFY_THROWS_WITH(model::load_model(write("nested.gguf", nested)), "nests arrays deeper than 4");
  }
};

TESSERA_TEST_MAIN(TestExportGguf, craftedHeadersAreRefused, f32ScoresExactlyLikeTheRun, f16PassesItsSelfCheck, q41IsRefusedWhenNotExact,
                  blocksFromCodesAreExactWhenScalesAreHalfValues, failedGgufExportLeavesNothing)
#ifdef TESSERA_TEST_WITH_QT
#include "test_export_gguf.moc"
#endif
