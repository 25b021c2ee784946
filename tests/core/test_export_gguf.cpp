// GGUF exports of stories260K runs: F32 re-imported (model and embedded vocabulary) scores exactly
// the run's perplexity; each 32-weight block type packs as ggml lays it out; block types are
// refused for plain RTN runs (their fp32 scales are not fp16 values, so llama.cpp cannot reproduce
// (q - z) * s) and written, bit-exact, for runs made with the matching --target by every method;
// corruption and truncation are detected.
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "api/export_jobs.h"
#include "api/model_jobs.h"
#include "export/gguf_blocks.h"
#include "export/gguf_export.h"
#include "export/gguf_file.h"
#include "export/run_source.h"
#include "export_test_support.h"
#include "model/model_loader.h"
#include "pipeline/quantization_run.h"
#include "pipeline/run_directory.h"
#include "quant/grid_target.h"
#include "tessera_test.h"
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
    const double from_run = tessera_test::perplexity(run, "", text),
                 from_export = tessera_test::perplexity("", out, text);
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
                                   std::string::npos,
             q51.reason.c_str());
    const auto q40 = tessera_test::export_format(w4_run(), "gguf-q4_0");
    QVERIFY2(!q40.available && q40.reason.find("4-bit symmetric codes") != std::string::npos, q40.reason.c_str());
  }

  // Each block type packs and unpacks one block as ggml lays it out (block_q4_0 ... block_q8_0):
  // golden bytes for d = 0.5 (fp16 0x3800), m = -1.25 (0xBD00) and the codes j mod 2^bits.
  void blockCodecsMatchGgmlsLayout() {
    for (const auto& t : exporting::gguf_block_types()) {
      std::uint8_t codes[32], bytes[40], back[32];
      for (int j = 0; j < 32; ++j) codes[j] = static_cast<std::uint8_t>((j * (t.bits == 8 ? 8 : 1)) % (1 << t.bits));
      exporting::pack_gguf_block(t, codes, 0.5f, -1.25f, bytes);
      const std::string name = exporting::ggml_type_name(t.type);
      QVERIFY2(bytes[0] == 0x00 && bytes[1] == 0x38, (name + ": d").c_str());
      std::size_t at = 2;
      if (!t.symmetric) {
        QVERIFY2(bytes[2] == 0x00 && bytes[3] == 0xBD, (name + ": m").c_str());
        at = 4;
      }
      if (t.bits == 5) {  // codes j mod 32: the fifth bit is set for j = 16..31
        QVERIFY2(bytes[at] == 0 && bytes[at + 1] == 0 && bytes[at + 2] == 0xFF && bytes[at + 3] == 0xFF,
                 (name + ": fifth bits").c_str());
        at += 4;
      }
      if (t.bits == 8) {
        QCOMPARE(static_cast<int>(static_cast<std::int8_t>(bytes[at])), -128);      // code 0
        QCOMPARE(static_cast<int>(static_cast<std::int8_t>(bytes[at + 31])), 120);  // code 248
      } else {  // byte j: element j low, element j + 16 high; both are j mod 16 here
        QCOMPARE(static_cast<int>(bytes[at + 3]), 0x33);
        QCOMPARE(static_cast<int>(bytes[at + 15]), 0xFF);
      }
      QCOMPARE(at + (t.bits == 8 ? 32 : 16), t.bytes);
      float d = 0, m = 0;
      exporting::unpack_gguf_block(t, bytes, back, d, m);
      QVERIFY2(std::memcmp(codes, back, 32) == 0, (name + ": codes after unpacking").c_str());
      QCOMPARE(d, 0.5f);
      QCOMPARE(m, t.symmetric ? 0.f : -1.25f);
      const float expected = t.symmetric ? (static_cast<float>(codes[5]) - static_cast<float>(1 << (t.bits - 1))) * 0.5f
                                         : static_cast<float>(codes[5]) * 0.5f - 1.25f;
      QCOMPARE(exporting::gguf_block_value(t, codes[5], d, m), expected);
      codes[7] = static_cast<std::uint8_t>(1 << t.bits);
      if (t.bits < 8)
        TESSERA_VERIFY_THROWS_WITH(exporting::pack_gguf_block(t, codes, 0.5f, 0.f, bytes), "does not fit");
    }
  }

  // A run made with --target X exports to X bit-exactly: every Linear whose input dimension is
  // whole blocks is written as blocks (down_proj's 172 inputs are not: F32), the self-check
  // compares codes and decoded weights, and the file scores the run's perplexity exactly.
  void targetRunsExportBitExactly() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    for (const auto& target : quant::grid_targets()) {
      const auto run = tessera_test::target_run(target.id);
      const auto& id = target.id;
      QVERIFY2(tessera_test::export_format(run, id).available, tessera_test::export_format(run, id).reason.c_str());
      const auto out = tessera_test::fresh_temp_dir("export-" + id) + "/m.gguf";
      const auto r = api::export_run({run, out, id, "fp32", false});
      QCOMPARE(r.not_converted.size(), std::size_t(5));
      const auto type_name = exporting::ggml_type_name(exporting::gguf_block_type(id)->type);
      QVERIFY2(r.self_check.find("30 " + type_name) != std::string::npos, r.self_check.c_str());
      const double from_run = tessera_test::perplexity(run, "", text),
                   from_export = tessera_test::perplexity("", out, text);
      std::printf("%s: ppl run %.9f export %.9f, %lld bytes\n  self-check: %s\n", id.c_str(), from_run, from_export,
                  (long long)r.bytes, r.self_check.c_str());
      QCOMPARE(from_export, from_run);
      // The other block types of the same bit width cannot hold it exactly (symmetric vs not).
      for (const auto& other : exporting::gguf_block_types())
        if (other.format_id != id && other.bits == target.spec.bits)
          QVERIFY2(!tessera_test::export_format(run, other.format_id).available, other.format_id.c_str());
      if (id == "gguf-q4_1") {
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

  // AWQ, OmniQuant and TesseraQ honour the target too: AWQ's clip search, OmniQuant's learned
  // clipping and TesseraQ's DST scales all land on fp16 scales, and PAR's codes export exactly.
  void everyMethodHonoursTheTarget() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    for (const std::string method : {"awq", "omniquant", "tesseraq"}) {
      const auto run = tessera_test::target_run("gguf-q4_0", method);
      const auto out = tessera_test::fresh_temp_dir("export-q4_0-" + method) + "/m.gguf";
      const auto r = api::export_run({run, out, "gguf-q4_0", "fp32", false});
      QVERIFY2(r.self_check.find("30 Q4_0") != std::string::npos, (method + ": " + r.self_check).c_str());
      const double from_run = tessera_test::perplexity(run, "", text),
                   from_export = tessera_test::perplexity("", out, text);
      std::printf("%s on gguf-q4_0: ppl run %.9f export %.9f\n", method.c_str(), from_run, from_export);
      QCOMPARE(from_export, from_run);
    }
  }

  // Damaged statistics files (they are informative) neither stop an export nor reach its
  // metadata as they are: wrong types and foreign entries are left out.
  void damagedStatisticsAreLeftOut() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto run = tessera_test::rtn_run(4, "export-gguf-damaged-stats");
    pipeline::RunDirectory rd(run);
    std::ofstream(rd.stats_path(0))
        << R"({"loss": "x", "layers": [{"layer": 3}, 5, {"layer": "q_proj", "rel_weight_error": 0.1}]})";
    std::ofstream(rd.stats_path(1)) << "[1, 2]";
    std::ofstream(rd.stats_path(2)) << "not json";
    const auto out = tessera_test::fresh_temp_dir("export-gguf-damaged-stats-out") + "/m.gguf";
    api::export_run({run, out, "gguf-f32", "fp32", false});
    const auto m = nlohmann::json::parse(exporting::GgufFile(out).value("tessera.run").get<std::string>());
    const auto& e = m.at("layer_errors");
    QCOMPARE(e.size(), std::size_t(3));  // blocks 1 and 2 left out
    QCOMPARE(e[0]["block"].get<int>(), 0);
    QVERIFY(e[0]["loss"].is_null());
    QCOMPARE(e[0]["rel_weight_error"].size(), std::size_t(1));
    QCOMPARE(e[0]["rel_weight_error"]["q_proj"].get<double>(), 0.1);
    QCOMPARE(e[1]["block"].get<int>(), 3);
    QVERIFY(e[1]["loss"].is_number());
  }

  void failedGgufExportLeavesNothing() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto base = tessera_test::fresh_temp_dir("export-gguf-fail");
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w4_run(), base + "/q.gguf", "gguf-q4_1", "fp32", false}),
                               "quantize with --target gguf-q4_1");
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w4_run(), "/proc/tessera-export-test.gguf", "gguf-f32", "fp32", false}),
                               "cannot create");
    std::ofstream(base + "/taken.gguf") << "x";
    TESSERA_VERIFY_THROWS_WITH(api::export_run({w4_run(), base + "/taken.gguf", "gguf-f32", "fp32", false}),
                               "already exists");
    std::size_t entries = 0;
    for (const auto& e : fs::directory_iterator(base)) {
      (void)e;
      ++entries;
    }
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

TESSERA_TEST_MAIN(TestExportGguf, craftedHeadersAreRefused, f32ScoresExactlyLikeTheRun, f16PassesItsSelfCheck,
                  q41IsRefusedWhenNotExact, blockCodecsMatchGgmlsLayout, targetRunsExportBitExactly,
                  everyMethodHonoursTheTarget, damagedStatisticsAreLeftOut, failedGgufExportLeavesNothing)
#ifdef TESSERA_TEST_WITH_QT
#include "test_export_gguf.moc"
#endif
