// GGUF exports of stories260K runs: F32 re-imported (model and embedded vocabulary) scores exactly
// the run's perplexity; each 32-weight block type packs as ggml lays it out; block types are
// refused for plain RTN runs (their fp32 scales are not fp16 values, so llama.cpp cannot reproduce
// (q - z) * s) and written, bit-exact, for runs made with the matching --target by every method;
// corruption and truncation are detected.
#include <c10/util/Half.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "api/export_jobs.h"
#include "api/model_jobs.h"
#include "export/gguf_export.h"
#include "export/run_source.h"
#include "export_test_support.h"
#include "formats/gguf_blocks.h"
#include "formats/gguf_file.h"
#include "model/gguf_import.h"
#include "model/model_loader.h"
#include "pipeline/quantization_run.h"
#include "quant/grid_target.h"
#include "rundir/run_directory.h"
#include "synthetic_model.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

// Runs and their exports score alike on any text (the weights are bit-identical): the tests that
// compare many of them read the first 4 KB of sample.txt (1,340 tokens, 2 windows of 512), not all 15,537.
constexpr std::size_t kExcerptBytes = 4096;

const std::string& w4_run() {
  static const std::string dir = tessera_test::rtn_run(4, "export-gguf-w4");
  return dir;
}

float ggml_fp16(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return static_cast<float>(c10::Half(h, c10::Half::from_bits()));
}

// ggml-quants.c dequantize_row_* for one block, transcribed loop by loop (ggml-common.h's block
// layouts as byte offsets), independently of formats/gguf_blocks.cpp.
std::vector<float> ggml_dequantize(formats::GgmlType type, const std::uint8_t* x) {
  using formats::GgmlType;
  std::vector<float> out(256);
  float* y = out.data();
  switch (type) {
    case GgmlType::Q4_0: {
      const float d = ggml_fp16(x);
      const std::uint8_t* qs = x + 2;
      for (int j = 0; j < 16; ++j) {
        const int x0 = (qs[j] & 0x0F) - 8, x1 = (qs[j] >> 4) - 8;
        y[j] = x0 * d;
        y[j + 16] = x1 * d;
      }
      break;
    }
    case GgmlType::IQ4_NL: {  // dequantize_row_iq4_nl
      static const std::int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                    1,    13,   25,  38,  53,  69,  89,  113};
      const float d = ggml_fp16(x);
      const std::uint8_t* qs = x + 2;
      for (int j = 0; j < 16; ++j) {
        y[j] = d * kvalues_iq4nl[qs[j] & 0xf];
        y[j + 16] = d * kvalues_iq4nl[qs[j] >> 4];
      }
      break;
    }
    case GgmlType::Q4_1: {
      const float d = ggml_fp16(x), m = ggml_fp16(x + 2);
      const std::uint8_t* qs = x + 4;
      for (int j = 0; j < 16; ++j) {
        const int x0 = qs[j] & 0x0F, x1 = qs[j] >> 4;
        y[j] = x0 * d + m;
        y[j + 16] = x1 * d + m;
      }
      break;
    }
    case GgmlType::Q5_0:
    case GgmlType::Q5_1: {
      const bool one = type == GgmlType::Q5_1;
      const float d = ggml_fp16(x), m = one ? ggml_fp16(x + 2) : 0.f;
      std::uint32_t qh;
      std::memcpy(&qh, x + (one ? 4 : 2), 4);
      const std::uint8_t* qs = x + (one ? 8 : 6);
      for (int j = 0; j < 16; ++j) {
        const std::uint8_t xh_0 = ((qh >> (j + 0)) << 4) & 0x10;
        const std::uint8_t xh_1 = ((qh >> (j + 12))) & 0x10;
        if (one) {
          const int x0 = (qs[j] & 0x0F) | xh_0, x1 = (qs[j] >> 4) | xh_1;
          y[j] = x0 * d + m;
          y[j + 16] = x1 * d + m;
        } else {
          const int x0 = ((qs[j] & 0x0F) | xh_0) - 16, x1 = ((qs[j] >> 4) | xh_1) - 16;
          y[j] = x0 * d;
          y[j + 16] = x1 * d;
        }
      }
      break;
    }
    case GgmlType::Q8_0: {
      const float d = ggml_fp16(x);
      for (int j = 0; j < 32; ++j) y[j] = static_cast<std::int8_t>(x[2 + j]) * d;
      break;
    }
    case GgmlType::Q2_K: {
      const std::uint8_t* scales = x;
      const std::uint8_t* q = x + 16;
      const float d = ggml_fp16(x + 80), min = ggml_fp16(x + 82);
      int is = 0;
      for (int n = 0; n < 256; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
          std::uint8_t sc = scales[is++];
          float dl = d * (sc & 0xF), ml = min * (sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * ((std::int8_t)((q[l] >> shift) & 3)) - ml;
          sc = scales[is++];
          dl = d * (sc & 0xF), ml = min * (sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * ((std::int8_t)((q[l + 16] >> shift) & 3)) - ml;
          shift += 2;
        }
        q += 32;
      }
      break;
    }
    case GgmlType::Q3_K: {
      const std::uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
      std::uint32_t aux[4];
      const std::int8_t* scales = reinterpret_cast<const std::int8_t*>(aux);
      const float d_all = ggml_fp16(x + 108);
      const std::uint8_t* q = x + 32;
      const std::uint8_t* hm = x;
      std::uint8_t m = 1;
      std::memcpy(aux, x + 96, 12);
      const std::uint32_t tmp = aux[2];
      aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
      aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
      aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
      aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
      int is = 0;
      for (int n = 0; n < 256; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
          float dl = d_all * (scales[is++] - 32);
          for (int l = 0; l < 16; ++l) *y++ = dl * ((std::int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
          dl = d_all * (scales[is++] - 32);
          for (int l = 0; l < 16; ++l)
            *y++ = dl * ((std::int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
          shift += 2;
          m <<= 1;
        }
        q += 32;
      }
      break;
    }
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const bool five = type == GgmlType::Q5_K;
      auto scale_min = [](int j, const std::uint8_t* q, std::uint8_t* dd, std::uint8_t* mm) {
        if (j < 4) {
          *dd = q[j] & 63;
          *mm = q[j + 4] & 63;
        } else {
          *dd = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
          *mm = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
        }
      };
      const float d = ggml_fp16(x), min = ggml_fp16(x + 2);
      const std::uint8_t* sc_bytes = x + 4;
      const std::uint8_t* qh = x + 16;
      const std::uint8_t* ql = x + (five ? 48 : 16);
      int is = 0;
      std::uint8_t sc, m, u1 = 1, u2 = 2;
      for (int j = 0; j < 256; j += 64) {
        scale_min(is + 0, sc_bytes, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        scale_min(is + 1, sc_bytes, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
        ql += 32;
        is += 2;
        u1 <<= 2;
        u2 <<= 2;
      }
      break;
    }
    case GgmlType::Q6_K: {
      const float d = ggml_fp16(x + 208);
      const std::uint8_t* ql = x;
      const std::uint8_t* qh = x + 128;
      const std::int8_t* sc = reinterpret_cast<const std::int8_t*>(x + 192);
      for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const std::int8_t q1 = (std::int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const std::int8_t q2 = (std::int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const std::int8_t q3 = (std::int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const std::int8_t q4 = (std::int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          y[l + 0] = d * sc[is + 0] * q1;
          y[l + 32] = d * sc[is + 2] * q2;
          y[l + 64] = d * sc[is + 4] * q3;
          y[l + 96] = d * sc[is + 6] * q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
      }
      break;
    }
    default:
      break;
  }
  return out;
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
    formats::GgufFile f(out);
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

  // The 32-weight types pack one block as ggml lays it out (block_q4_0 ... block_q8_0): golden
  // bytes for d = 0.5 (fp16 0x3800), m = -1.25 (0xBD00) and the codes j mod 2^bits.
  void legacyBlocksMatchGoldenBytes() {
    for (const auto& t : formats::gguf_block_types()) {
      if (t.k_quant()) continue;
      formats::GgufBlock b;
      for (int j = 0; j < 32; ++j) b.codes[j] = static_cast<std::uint8_t>((j * (t.bits == 8 ? 8 : 1)) % (1 << t.bits));
      b.d = 0.5f;
      b.m = t.form == formats::GgufBlockForm::Offset ? -1.25f : 0.f;
      std::uint8_t bytes[40];
      formats::pack_gguf_block(t, b, bytes);
      const std::string name = formats::ggml_type_name(t.type);
      QVERIFY2(bytes[0] == 0x00 && bytes[1] == 0x38, (name + ": d").c_str());
      std::size_t at = 2;
      if (t.form == formats::GgufBlockForm::Offset) {
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
    }
  }

  // Every type, 32-weight and k-quant: random blocks (seeded, every field over its whole range)
  // packed, then decoded by a line-by-line transcription of ggml's dequantize_row_* loops
  // (ggml_dequantize below), give exactly gguf_block_value of the unpacked fields, which equal the
  // packed ones; out-of-range codes and scales are refused.
  void blockCodecsMatchGgmlsLoops() {
    std::mt19937 rng(5);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    auto fp16 = [&] {  // a random fp16 value of either sign, normal or subnormal
      const auto bits = static_cast<std::uint16_t>(uniform(0, 0x7BFF) | (uniform(0, 1) << 15));
      return static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
    };
    for (const auto& t : formats::gguf_block_types()) {
      const std::string name = formats::ggml_type_name(t.type);
      for (int trial = 0; trial < 200; ++trial) {
        formats::GgufBlock b;
        for (int j = 0; j < t.weights; ++j) b.codes[j] = static_cast<std::uint8_t>(uniform(0, (1 << t.bits) - 1));
        b.d = fp16();
        if (t.form == formats::GgufBlockForm::Offset) b.m = fp16();
        if (t.form == formats::GgufBlockForm::ScaledWithMins) b.dmin = fp16();
        for (int g = 0; t.k_quant() && g < t.groups(); ++g) {
          b.scales[g] = uniform(t.scale_min, t.scale_max);
          if (t.form == formats::GgufBlockForm::ScaledWithMins) b.mins[g] = uniform(0, t.scale_max);
        }
        std::vector<std::uint8_t> bytes(t.bytes);
        formats::pack_gguf_block(t, b, bytes.data());
        const auto back = formats::unpack_gguf_block(t, bytes.data());
        QVERIFY2(back.codes == b.codes && back.scales == b.scales && back.mins == b.mins && back.d == b.d &&
                     back.m == b.m && back.dmin == b.dmin,
                 (name + ": fields after unpacking").c_str());
        const auto ggml = ggml_dequantize(t.type, bytes.data());
        for (int j = 0; j < t.weights; ++j) {
          const float v = formats::gguf_block_value(t, back, j);
          if (!(std::memcmp(&v, &ggml[j], 4) == 0 || (std::isnan(v) && std::isnan(ggml[j]))))
            QFAIL((name + ": element " + std::to_string(j) + " decodes to " + std::to_string(v) + ", ggml's loop " +
                   std::to_string(ggml[j]))
                      .c_str());
        }
      }
      formats::GgufBlock bad;
      std::vector<std::uint8_t> bytes(t.bytes);
      bad.codes[7] = static_cast<std::uint8_t>(1 << t.bits);
      if (t.bits < 8) TESSERA_VERIFY_THROWS_WITH(formats::pack_gguf_block(t, bad, bytes.data()), "does not fit");
      if (t.k_quant()) {
        bad.codes[7] = 0;
        bad.scales[3] = t.scale_max + 1;
        TESSERA_VERIFY_THROWS_WITH(formats::pack_gguf_block(t, bad, bytes.data()), "scale");
      }
    }
  }

  // A run made with --target X exports to X bit-exactly: every Linear whose input dimension is
  // whole blocks is written as blocks (down_proj's 172 inputs are not: F32), the self-check
  // compares codes and decoded weights, and the file scores the run's perplexity exactly.
  void targetRunsExportBitExactly() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(sample, "text/tinystories/sample.txt");
    const auto text = tessera_test::text_excerpt(sample, kExcerptBytes);
    for (const auto& target : quant::grid_targets()) {
      if (target.spec.superblock_levels > 0) continue;  // kQuantTargetsExportBitExactly
      const auto run = tessera_test::target_run(target.id);
      const auto& id = target.id;
      QVERIFY2(tessera_test::export_format(run, id).available, tessera_test::export_format(run, id).reason.c_str());
      const auto out = tessera_test::fresh_temp_dir("export-" + id) + "/m.gguf";
      const auto r = api::export_run({run, out, id, "fp32", false});
      QCOMPARE(r.not_converted.size(), std::size_t(5));
      const auto type_name = formats::ggml_type_name(formats::gguf_block_type(id)->type);
      QVERIFY2(r.self_check.find("30 " + type_name) != std::string::npos, r.self_check.c_str());
      const double from_run = tessera_test::perplexity(run, "", text),
                   from_export = tessera_test::perplexity("", out, text);
      std::printf("%s: ppl run %.9f export %.9f, %lld bytes\n  self-check: %s\n", id.c_str(), from_run, from_export,
                  (long long)r.bytes, r.self_check.c_str());
      QCOMPARE(from_export, from_run);
      // The other block types of the same bit width cannot hold it exactly (symmetric vs not).
      for (const auto& other : formats::gguf_block_types())
        if (other.format_id != id && other.bits == target.spec.bits)
          QVERIFY2(!tessera_test::export_format(run, other.format_id).available, other.format_id.c_str());
      if (id == "gguf-q4_1") {
        // A flipped bit in a block is caught by the self-check and by the importer; so is truncation.
        const auto source = exporting::RunSource::load(run);
        const auto at = formats::GgufFile(out).tensor("blk.1.attn_v.weight").file_offset;
        tessera_test::flip_bits(out, at + 10, 0x01);  // inside the first block's nibbles
        TESSERA_VERIFY_THROWS_WITH(exporting::verify_gguf(source, out), "blk.1.attn_v.weight");
        TESSERA_VERIFY_THROWS_WITH(model::load_model(out), "corrupted");
        fs::resize_file(out, fs::file_size(out) - 64);
        TESSERA_VERIFY_THROWS_WITH(exporting::verify_gguf(source, out), "truncated");
        TESSERA_VERIFY_THROWS_WITH(model::load_model(out), "truncated");
      }
    }
  }

  // The k-quant targets on stories260K widened to rows of 256 (tests/support/synthetic_model.h;
  // stories260K's own 64 and 172 take llama.cpp's fallback types, kQuantFallbackTypes): every
  // Linear is written as super-blocks, the self-check passes, and the file scores the run's
  // perplexity exactly. TesseraQ's DST scales and OmniQuant's learned clipping land on the d * k
  // lattice as well, and for the types with mins their offsets on the dmin * m one.
  void kQuantTargetsExportBitExactly() {
    TESSERA_REQUIRE_DATA(sample, "text/tinystories/sample.txt");
    const auto text = tessera_test::text_excerpt(sample, kExcerptBytes);
    TESSERA_REQUIRE_DATA(stories, "models/stories260K/stories260K.bin");
    const auto model = tessera_test::write_wide_stories260k(tessera_test::fresh_temp_dir("wide-stories260k"));
    QVERIFY(!model.empty());
    // The widened checkpoint computes stories260K's function (RMSNorm's epsilon aside).
    const double wide = tessera_test::perplexity("", model, text), narrow = tessera_test::perplexity("", stories, text);
    std::printf("stories260K ppl %.9f, widened to rows of 256: %.9f\n", narrow, wide);
    QVERIFY2(std::fabs(wide / narrow - 1) < 1e-3, std::to_string(wide).c_str());
    for (const auto& [id, method] : std::vector<std::pair<std::string, std::string>>{{"gguf-q2_k", "tesseraq"},
                                                                                     {"gguf-q3_k", "rtn"},
                                                                                     {"gguf-q4_k", "awq"},
                                                                                     {"gguf-q5_k", "omniquant"},
                                                                                     {"gguf-q6_k", "rtn"}}) {
      const auto run = tessera_test::target_run(id, method, model);
      const auto out = tessera_test::fresh_temp_dir("export-k-" + id) + "/m.gguf";
      const auto r = api::export_run({run, out, id, "fp32", false});
      QVERIFY2(r.not_converted.empty(), r.not_converted.empty() ? "" : r.not_converted.front().c_str());
      const auto type_name = formats::ggml_type_name(formats::gguf_block_type(id)->type);
      QVERIFY2(r.self_check.find("35 " + type_name) != std::string::npos, r.self_check.c_str());
      const double from_run = tessera_test::perplexity(run, "", text),
                   from_export = tessera_test::perplexity("", out, text);
      std::printf("%s (%s): ppl run %.9f export %.9f, %lld bytes\n", id.c_str(), method.c_str(), from_run, from_export,
                  (long long)r.bytes);
      QCOMPARE(from_export, from_run);
      // Every super-block's largest scale is d * (largest k): the target's projection.
      const formats::GgufFile f(out);
      const auto& t = f.tensor("blk.0.ffn_down.weight");
      const auto& bt = *formats::gguf_block_type(t.type);
      const auto first = formats::unpack_gguf_block(bt, t.data);
      QCOMPARE(*std::max_element(first.scales.begin(), first.scales.begin() + bt.groups()), bt.scale_max);
      if (bt.form != formats::GgufBlockForm::ScaledWithMins) continue;
      // Q2_K/Q4_K/Q5_K: the offsets are the groups' own (largest m = the maximum), not the
      // symmetric codes' (m = k, dmin = 2^(b-1) d).
      QCOMPARE(*std::max_element(first.mins.begin(), first.mins.begin() + bt.groups()), bt.scale_max);
      QVERIFY2(first.mins != first.scales && first.dmin != first.d * static_cast<float>(1 << (bt.bits - 1)),
               id.c_str());
    }
  }

  // llama.cpp's per-tensor fallback (llama-quant.cpp, llama_tensor_get_type): a Linear whose input
  // width is not a multiple of 256 takes Q5_0 / Q5_1 / Q8_0 for Q4_K / Q5_K / Q6_K, or F16 when the
  // width is not whole 32-weight blocks either. stories260K widened to width 256 with an FFN of 320
  // (down_proj falls back) or 300 (down_proj F16), and stories260K itself (width 64: every Linear
  // Q5_0; FFN 172: down_proj F16). Every method quantizes each Linear on its own grid, the file
  // holds each tensor in its type bit for bit (decoded = the run's weights), general.file_type
  // stays the target's, the report lists each fallback tensor, and the file scores the run's
  // perplexity exactly. Q2_K / Q3_K fall back to IQ4_NL (FFN 320: down_proj; stories260K: every
  // Linear but down_proj, F16), whose levels are rounded to nearest also under TesseraQ and OmniQuant.
  void kQuantFallbackTypes() {
    TESSERA_REQUIRE_DATA(sample, "text/tinystories/sample.txt");
    const auto text = tessera_test::text_excerpt(sample, kExcerptBytes);
    TESSERA_REQUIRE_DATA(stories, "models/stories260K/stories260K.bin");
    const auto ffn320 = tessera_test::write_wide_stories260k(tessera_test::fresh_temp_dir("wide-ffn320"), 320);
    const auto ffn300 = tessera_test::write_wide_stories260k(tessera_test::fresh_temp_dir("wide-ffn300"), 300);
    QVERIFY(!ffn320.empty() && !ffn300.empty());
    struct Case {
      std::string model, target, method;
      std::string type, down_type;  // of q/k/v/o/gate/up, of down_proj
    };
    for (const auto& c : std::vector<Case>{{ffn320, "gguf-q4_k", "rtn", "Q4_K", "Q5_0"},
                                           {ffn320, "gguf-q5_k", "awq", "Q5_K", "Q5_1"},
                                           {ffn320, "gguf-q6_k", "omniquant", "Q6_K", "Q8_0"},
                                           {ffn300, "gguf-q4_k", "tesseraq", "Q4_K", "F16"},
                                           {ffn300, "gguf-q2_k", "rtn", "Q2_K", "F16"},
                                           {ffn320, "gguf-q2_k", "tesseraq", "Q2_K", "IQ4_NL"},
                                           {stories, "gguf-q3_k", "omniquant", "IQ4_NL", "F16"},
                                           {stories, "gguf-q4_k", "tesseraq", "Q5_0", "F16"}}) {
      const auto what = c.target + " " + c.method + " " + fs::path(c.model).parent_path().filename().string();
      const auto run = tessera_test::target_run(c.target, c.method, c.model);
      const auto out = tessera_test::fresh_temp_dir("export-fallback") + "/m.gguf";
      const auto r = api::export_run({run, out, c.target, "fp32", false});
      QVERIFY2(r.not_converted.empty(), r.not_converted.empty() ? "" : r.not_converted.front().c_str());
      const formats::GgufFile f(out);
      QCOMPARE(f.value("general.file_type").get<std::uint32_t>(), formats::gguf_block_type(c.target)->llama_file_type);
      const auto source = exporting::RunSource::load(run);
      // q_proj (its rows permuted to ggml's order), v_proj and down_proj stand for the rest.
      const std::pair<model::LinearKind, const char*> checked[] = {
          {model::LinearKind::Q, "attn_q"}, {model::LinearKind::V, "attn_v"}, {model::LinearKind::Down, "ffn_down"}};
      for (std::size_t k = 0; k < source.blocks.size(); ++k)
        for (const auto& [kind, gguf_name] : checked) {
          const auto& q = source.blocks[k].linears.at(kind);
          const auto name = "blk." + std::to_string(k) + "." + gguf_name + ".weight";
          const auto expected = kind == model::LinearKind::Down ? c.down_type : c.type;
          const auto& t = f.tensor(name);
          QCOMPARE(formats::ggml_type_name(t.type), expected);
          QCOMPARE(q.quantized(), expected != "F16");
          QCOMPARE(q.quantized() && q.spec.nonuniform(), expected == "IQ4_NL");
          // Bit-exact: llama.cpp's decoding of the file is the run's weight.
          if (kind != model::LinearKind::Q)
            QVERIFY2(torch::equal(model::decode_gguf_tensor(t), q.dequantize()), (what + " " + name).c_str());
        }
      // The report lists every tensor not in the target's own type: name, ggml shape, type, reason.
      const auto own = formats::ggml_type_name(formats::gguf_block_type(c.target)->type);
      const std::size_t listed_per_block = (c.type != own ? 6 : 0) + (c.down_type != own ? 1 : 0);
      QCOMPARE(r.fallbacks.size(), listed_per_block * source.blocks.size());
      for (const auto& t : r.fallbacks) {
        QCOMPARE(formats::ggml_type_name(f.tensor(t.tensor).type), t.type);
        QVERIFY2(t.reason.find("is not a multiple of 256") != std::string::npos, t.reason.c_str());
        if (t.tensor.find("ffn_down") != std::string::npos) {
          QCOMPARE(t.type, c.down_type);
          QCOMPARE(t.shape.size(), std::size_t(2));
          QCOMPARE(t.shape[1], std::int64_t(c.model == stories ? 64 : 256));  // ggml's ne: {in, out}
          if (c.down_type == "F16") QVERIFY2(t.reason.find("nor of 32") != std::string::npos, t.reason.c_str());
        }
      }
      const double from_run = tessera_test::perplexity(run, "", text),
                   from_export = tessera_test::perplexity("", out, text);
      std::printf("%s: ppl run %.9f export %.9f; %zu fallback tensors, e.g. %s %s (%s)\n  self-check: %s\n",
                  what.c_str(), from_run, from_export, r.fallbacks.size(), r.fallbacks.front().tensor.c_str(),
                  r.fallbacks.front().type.c_str(), r.fallbacks.front().reason.c_str(), r.self_check.c_str());
      QCOMPARE(from_export, from_run);
    }
  }

  // AWQ, OmniQuant and TesseraQ honour the target too: AWQ's clip search, OmniQuant's learned
  // clipping and TesseraQ's DST scales all land on fp16 scales, and PAR's codes export exactly.
  void everyMethodHonoursTheTarget() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(sample, "text/tinystories/sample.txt");
    const auto text = tessera_test::text_excerpt(sample, kExcerptBytes);
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
    rundir::RunDirectory rd(run);
    std::ofstream(rd.stats_path(0))
        << R"({"loss": "x", "layers": [{"layer": 3}, 5, {"layer": "q_proj", "rel_weight_error": 0.1}]})";
    std::ofstream(rd.stats_path(1)) << "[1, 2]";
    std::ofstream(rd.stats_path(2)) << "not json";
    const auto out = tessera_test::fresh_temp_dir("export-gguf-damaged-stats-out") + "/m.gguf";
    api::export_run({run, out, "gguf-f32", "fp32", false});
    const auto m = nlohmann::json::parse(formats::GgufFile(out).value("tessera.run").get<std::string>());
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
    // One F32 tensor "t" whose offset or dimensions are chosen to wrap 64-bit sums and products
    // around (the fuzzer's finding: an offset near 2^64 passed the end-of-file check).
    auto one_tensor = [&](std::uint64_t ne0, std::uint64_t ne1, std::uint64_t offset) {
      std::string f("GGUF", 4);
      auto p32 = [&](std::uint32_t v) { f.append(reinterpret_cast<const char*>(&v), 4); };
      auto p64 = [&](std::uint64_t v) { f.append(reinterpret_cast<const char*>(&v), 8); };
      p32(3), p64(1), p64(0), p64(1), f += "t", p32(2), p64(ne0), p64(ne1), p32(0), p64(offset);
      f.resize(96 + 32, '\0');  // header padded to 96 (alignment 32), then 8 floats
      return f;
    };
    QCOMPARE(formats::GgufFile(write("sane.gguf", one_tensor(8, 1, 0))).tensor("t").nbytes, std::size_t(32));
    TESSERA_VERIFY_THROWS_WITH(formats::GgufFile(write("offset.gguf", one_tensor(8, 1, ~std::uint64_t(0) - 63))),
                               "runs past the end of the file");
    TESSERA_VERIFY_THROWS_WITH(
        formats::GgufFile(write("dims.gguf", one_tensor(std::uint64_t(1) << 32, std::uint64_t(1) << 32, 0))),
        "claims more than 2^48 elements");
  }
};

TESSERA_TEST_MAIN(TestExportGguf, craftedHeadersAreRefused, f32ScoresExactlyLikeTheRun, f16PassesItsSelfCheck,
                  q41IsRefusedWhenNotExact, legacyBlocksMatchGoldenBytes, blockCodecsMatchGgmlsLoops,
                  targetRunsExportBitExactly, kQuantTargetsExportBitExactly, kQuantFallbackTypes,
                  everyMethodHonoursTheTarget, damagedStatisticsAreLeftOut, failedGgufExportLeavesNothing)
#ifdef TESSERA_TEST_WITH_QT
#include "test_export_gguf.moc"
#endif
