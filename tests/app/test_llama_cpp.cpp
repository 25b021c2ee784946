// llama.cpp itself reads every GGUF Tessera writes: its prebuilt CPU binaries, driven through the
// npm package node-llama-cpp (pinned in tests/llama_cpp/package.json, installed by
// installers/install-deps-debian.sh), by tests/llama_cpp/llama_check.mjs. For each file it must
// give Tessera's token ids for the evaluation text, Tessera's perplexity of the same model and the
// same greedy continuation.
//
// Perplexity bounds: F32 files within 1e-6 relative (F32 KV cache; what is left is the order of
// fp32 sums; measured 4.8e-7). For F16 and BF16 weights ggml's CPU matmul first rounds the
// activations to the weight's type (its vec_dot_type), which Tessera's fp32 forward does not: one
// rounding of relative size 2^-11 (fp16) or 2^-8 (bf16) per activation, which averages out over a
// dot product; the bounds are a tenth of that unit, 5e-5 and 4e-4 (measured on stories260K:
// 6.9e-6 and 3.5e-6 for F16, 9.0e-5 for BF16).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "byte_level_bpe.h"
#include "cli_runner.h"
#include "synthetic_model.h"
#include "tessera_test.h"
#include "test_data.h"
#include "text/text_file.h"

namespace {

using nlohmann::json;
using tessera_test::last_json;
using tessera_test::run_cli;
using tessera_test::run_command;

const char* const kModel = "models/stories260K/stories260K.bin";
const char* const kText = "text/tinystories/sample.txt";  // CRLF line endings: read with universal newlines
constexpr int kGreedyTokens = 40;
// The fallback types' files are scored on the first 8 KB of kText (windows of 512): their
// vocabulary is stories260K's, whose tokenization of all of kText the other tests compare, and
// llama.cpp takes 12 s per file for the whole text on one thread. Not the k-quant files: on so few
// tokens a 2-bit model's perplexity (about 240) moves 7e-3 relative under llama.cpp's activation
// rounding, against 1.1e-3 over the whole text.
constexpr std::size_t kExcerptBytes = 8192;
// Block types: ggml's CPU matmul rounds the activations to 8 bits per 32 (Q8_0 / Q8_1, its
// vec_dot_type) before the dot product, a relative rounding of up to 2^-8 per activation that
// averages out over a dot product; the bound is half that unit.
constexpr double kBlockBound = 2e-3;
// k-quants: ggml's Q8_K rounds activations to 8 bits with one scale per 256 (not per 32), so a
// small activation beside a large one in its block keeps fewer bits. Measured on stories260K
// widened to rows of 256 (AWQ runs): 4.5e-5 (Q5_K) to 1.1e-3 (Q4_K) relative; Q2_K 4.1e-3 (a 2-bit
// model of perplexity 36). That the Q2_K file itself holds the run's weights is checked exactly on
// the same run's F32 export (kQuantExportsMatch: 4.5e-7).
constexpr double kKQuantBound = 2e-3;
constexpr double kQ2KBound = 6e-3;

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// llama.cpp's token ids, perplexity and greedy text of `gguf`; with tokens_only its token ids only.
json llama_cpp(const std::string& gguf, const std::string& text, bool tokens_only = false) {
  const auto r = run_command(
      "cd " + quoted(TESSERA_TEST_LLAMA_CPP_DIR) + " && " + quoted(TESSERA_TEST_NODE) + " llama_check.mjs --model " +
      quoted(gguf) + " --text " + quoted(text) +
      (tokens_only ? std::string(" --tokens-only") : " --window 512 --max-tokens " + std::to_string(kGreedyTokens)));
  const auto j = last_json(r.out);
  if (r.status != 0 || j.is_null())
    std::fprintf(stderr, "llama_check.mjs failed (exit %d):\n%s\n", r.status, r.out.c_str());
  return j;
}

struct TesseraView {
  double ppl = 0;
  std::vector<std::int32_t> ids;
  std::string greedy;
};

// Tessera's evaluation of the same file (windows of 512, llama_cpp's), its token ids and its greedy text.
TesseraView tessera(const std::string& gguf, const std::string& text) {
  TesseraView v;
  auto r = run_cli("eval --model " + quoted(gguf) + " --text " + quoted(text) + " --seq-len 512 --json");
  if (r.status != 0) std::fprintf(stderr, "%s\n", r.out.c_str());
  v.ppl = last_json(r.out).value("ppl", 0.0);
  r = run_cli("tokenize --tokenizer " + quoted(gguf) + " --text " + quoted(text) + " --ids --json");
  v.ids = last_json(r.out).value("ids", std::vector<std::int32_t>{});
  r = run_cli("generate --model " + quoted(gguf) + " --max-tokens " + std::to_string(kGreedyTokens) + " --json");
  v.greedy = last_json(r.out).value("text", std::string());
  return v;
}

// Token ids, perplexity within `bound` (relative) and greedy text of llama.cpp against Tessera's.
// Tessera's view of the file goes to `tessera_view` (for the callers' exactness checks). llama.cpp
// (one thread, in node) runs while Tessera's CLI does: the two take about as long. With
// `greedy_common` the greedy texts need only share their first that many characters: a near-tie
// of two tokens late in the text can go either way under llama.cpp's rounding of activations.
void compare(const std::string& gguf, const std::string& text, double bound, const std::string& what,
             TesseraView* tessera_view = nullptr, std::size_t greedy_common = std::string::npos) {
  auto llama = std::async(std::launch::async, [&] { return llama_cpp(gguf, text); });
  const auto t = tessera(gguf, text);
  const auto l = llama.get();
  if (tessera_view != nullptr) *tessera_view = t;
  QVERIFY2(!l.is_null() && l.contains("ppl"), ("llama.cpp gave no result for " + what).c_str());
  const auto llama_ids = l["tokens"].get<std::vector<std::int32_t>>();
  QCOMPARE(llama_ids.size(), t.ids.size());
  QVERIFY2(llama_ids == t.ids, (what + ": llama.cpp tokenizes the text differently").c_str());
  const double rel = std::fabs(l["ppl"].get<double>() / t.ppl - 1.0);
  std::printf("%-34s tessera ppl %.9f  llama.cpp %.9f  relative %.2e (bound %.1e)\n", what.c_str(), t.ppl,
              l["ppl"].get<double>(), rel, bound);
  QVERIFY2(rel <= bound, (what + ": perplexity differs by " + std::to_string(rel)).c_str());
  // Tessera's text begins where llama.cpp's detokenized continuation does (both greedy).
  const auto llama_text = l["greedy_text"].get<std::string>();
  std::printf("%-34s greedy: %s\n", what.c_str(), llama_text.c_str());
  if (greedy_common != std::string::npos && t.greedy.find(llama_text) == std::string::npos) {
    const auto start = t.greedy.find(llama_text.substr(0, std::min(greedy_common, llama_text.size())));
    std::size_t common = 0;
    while (start != std::string::npos && common < llama_text.size() && start + common < t.greedy.size() &&
           t.greedy[start + common] == llama_text[common])
      ++common;
    std::printf("%-34s greedy texts share %zu characters, then Tessera: %s\n", what.c_str(), common,
                start == std::string::npos ? "" : t.greedy.substr(start + common).c_str());
    QVERIFY2(common >= greedy_common,
             (what + ": greedy texts differ:\n  tessera:   " + t.greedy + "\n  llama.cpp: " + llama_text).c_str());
    return;
  }
  QVERIFY2(!llama_text.empty() && t.greedy.find(llama_text) != std::string::npos,
           (what + ": greedy texts differ:\n  tessera:   " + t.greedy + "\n  llama.cpp: " + llama_text).c_str());
}

// An AWQ run of `model` on `target`'s grid, exported to that GGUF type: Tessera scores the file
// exactly as the run (both with compare's windows of 512, the models' context), and llama.cpp
// within `bound` (compare). The export's --json report goes to `report` when given.
void awq_run_on_target_matches(const std::string& model, const std::string& calib, const std::string& text,
                               const std::string& run, const std::string& target, double bound, const std::string& what,
                               json* report = nullptr, std::size_t greedy_common = std::string::npos) {
  auto r = run_cli("quantize --model " + quoted(model) + " --calib " + quoted(calib) + " --out " + quoted(run) +
                   " --method awq --target " + target + " --samples 8 --seq-len 128 --json");
  QVERIFY2(r.status == 0, r.out.c_str());
  const auto gguf = run + ".gguf";
  r = run_cli("export --run " + quoted(run) + " --format " + target + " --out " + quoted(gguf) + " --json");
  QVERIFY2(r.status == 0, r.out.c_str());
  if (report) *report = last_json(r.out);
  const auto run_ppl =
      last_json(run_cli("eval --run " + quoted(run) + " --text " + quoted(text) + " --seq-len 512 --json").out)["ppl"]
          .get<double>();
  TesseraView file;
  compare(gguf, text, bound, what, &file, greedy_common);
  QCOMPARE(file.ppl, run_ppl);
}

}  // namespace

#define REQUIRE_LLAMA_CPP()                                                                                            \
  if (std::string(TESSERA_TEST_NODE).find("NOTFOUND") != std::string::npos ||                                          \
      !std::filesystem::exists(std::filesystem::path(TESSERA_TEST_LLAMA_CPP_DIR) / "node_modules" / "node-llama-cpp")) \
  QFAIL(                                                                                                               \
      "llama.cpp is not installed (Node 20 and node-llama-cpp in tests/llama_cpp/node_modules): run "                  \
      "bash installers/install-deps-debian.sh, then cmake again")

class TestLlamaCpp : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void unquantizedConversionsMatch() {
    REQUIRE_LLAMA_CPP();
    TESSERA_REQUIRE_DATA(model, kModel);
    TESSERA_REQUIRE_DATA(text, kText);
    const auto dir = tessera_test::fresh_temp_dir("llama-cpp-convert");
    const auto fp =
        last_json(run_cli("eval --model " + quoted(model) + " --text " + quoted(text) + " --seq-len 512 --json").out);
    for (const auto& [dtype, bound] : {std::pair<std::string, double>{"fp32", 1e-6}, {"fp16", 5e-5}, {"bf16", 4e-4}}) {
      const auto gguf = dir + "/stories260K-" + dtype + ".gguf";
      const auto r = run_cli("convert --model " + quoted(model) + " --out " + quoted(gguf) + " --dtype " + dtype);
      QVERIFY2(r.status == 0, r.out.c_str());
      TesseraView file;
      compare(gguf, text, bound, "convert " + dtype, &file);
      if (dtype == "fp32") QCOMPARE(file.ppl, fp["ppl"].get<double>());  // the conversion itself is exact
    }
  }

  // A Hugging Face folder whose tokenizer is a SentencePiece-style BPE tokenizer.json: written as
  // llama.cpp's SentencePiece model with merge ranks as scores, it must tokenize the same.
  void tokenizerJsonModelMatches() {
    REQUIRE_LLAMA_CPP();
    TESSERA_REQUIRE_DATA(model, "models/TinyStories-656K");
    TESSERA_REQUIRE_DATA(text, kText);
    const auto dir = tessera_test::fresh_temp_dir("llama-cpp-hf");
    const auto gguf = dir + "/tinystories-656k.gguf";
    const auto r = run_cli("convert --model " + quoted(model) + " --out " + quoted(gguf));
    QVERIFY2(r.status == 0, r.out.c_str());
    const auto hf_ids = last_json(run_cli("tokenize --tokenizer " + quoted(model + "/tokenizer.json") + " --text " +
                                          quoted(text) + " --ids --json")
                                      .out)["ids"];
    const auto gguf_ids = last_json(
        run_cli("tokenize --tokenizer " + quoted(gguf) + " --text " + quoted(text) + " --ids --json").out)["ids"];
    QVERIFY2(hf_ids == gguf_ids && hf_ids.size() > 1000,
             "the GGUF vocabulary tokenizes differently from tokenizer.json");
    // F32, measured 2.4e-6 relative (37.235462 vs 37.235373): more than stories260K's 4.8e-7; the
    // part of ggml's fp32 arithmetic (RoPE angles, softmax, norms) that causes it is not isolated.
    compare(gguf, text, 5e-6, "TinyStories-656K (tokenizer.json)");
  }

  // Byte-level BPE tokenizer.json (GPT-2 and LLaMA-3 styles; trained by the test on WikiText-2 to
  // TinyStories-656K's 2048 tokens, beside a copy of its weights) written as llama.cpp's "gpt2"
  // vocabulary with the pre-tokenizer of its regex: llama.cpp must split and merge every text as
  // Tessera does, and score and continue it as Tessera does.
  void byteLevelTokenizerJsonModelMatches() {
    REQUIRE_LLAMA_CPP();
    TESSERA_REQUIRE_DATA(model, "models/TinyStories-656K");
    TESSERA_REQUIRE_DATA(text, kText);
    TESSERA_REQUIRE_DATA(wiki, "text/wikitext-2-raw/wiki.test.raw");
    const auto wiki_text = tessera::text::read_text_file(wiki);
    const auto dir = tessera_test::fresh_temp_dir("llama-cpp-byte-level");
    // Non-ASCII, digits, contractions and whitespace runs, then a stretch of WikiText the
    // tokenizer was not trained on.
    const auto exercise = dir + "/exercise.txt";
    std::ofstream(exercise, std::ios::binary) << tessera_test::regex_exercise_text() << "\n"
                                              << tessera_test::utf8_slice(wiki_text, 200000, 6000);
    for (const auto style : {tessera_test::ByteLevelStyle::Gpt2, tessera_test::ByteLevelStyle::Llama3}) {
      const std::string name = style == tessera_test::ByteLevelStyle::Gpt2 ? "gpt2" : "llama3";
      const auto folder = dir + "/" + name;
      std::filesystem::create_directories(folder);
      for (const char* f : {"config.json", "model.safetensors"})
        std::filesystem::copy_file(model + "/" + f, folder + "/" + f);
      const auto bpe = tessera_test::train_byte_level_bpe(tessera_test::utf8_slice(wiki_text, 0, 200000), 2048, style);
      std::ofstream(folder + "/tokenizer.json") << bpe.tokenizer.dump();
      std::ofstream(folder + "/tokenizer_config.json") << bpe.config.dump();
      const auto gguf = dir + "/" + name + ".gguf";
      const auto r = run_cli("convert --model " + quoted(folder) + " --out " + quoted(gguf));
      QVERIFY2(r.status == 0, r.out.c_str());
      for (const auto& t : {text, exercise}) {
        auto ids = [&](const std::string& tokenizer) {
          return last_json(
                     run_cli("tokenize --tokenizer " + quoted(tokenizer) + " --text " + quoted(t) + " --ids --json")
                         .out)
              .value("ids", std::vector<std::int32_t>{});
        };
        const auto hf_ids = ids(folder + "/tokenizer.json");
        QVERIFY2(hf_ids.size() > 1000, (name + ": too few tokens for " + t).c_str());
        QVERIFY2(ids(gguf) == hf_ids, (name + ": the GGUF vocabulary tokenizes " + t + " differently").c_str());
        const auto l = llama_cpp(gguf, t, /*tokens_only=*/true);
        QVERIFY2(l.contains("tokens"), ("llama.cpp gave no tokens for " + t).c_str());
        const auto llama_ids = l["tokens"].get<std::vector<std::int32_t>>();
        std::size_t first = 0;
        while (first < std::min(llama_ids.size(), hf_ids.size()) && llama_ids[first] == hf_ids[first]) ++first;
        std::printf("%-8s %s: %zu tokens, llama.cpp %zu, first difference at %zu\n", name.c_str(),
                    std::filesystem::path(t).filename().c_str(), hf_ids.size(), llama_ids.size(), first);
        QVERIFY2(llama_ids == hf_ids,
                 (name + ": llama.cpp tokenizes " + t + " differently from token " + std::to_string(first)).c_str());
      }
      compare(gguf, text, 5e-6, "TinyStories-656K, byte-level " + name);
    }
  }

  void quantizedRunExportsMatch() {
    REQUIRE_LLAMA_CPP();
    TESSERA_REQUIRE_DATA(model, kModel);
    TESSERA_REQUIRE_DATA(text, kText);
    TESSERA_REQUIRE_DATA(calib, "text/tinystories/train-sample.txt");
    const auto dir = tessera_test::fresh_temp_dir("llama-cpp-run");
    auto r = run_cli("quantize --model " + quoted(model) + " --calib " + quoted(calib) + " --out " +
                     quoted(dir + "/run") + " --method rtn --wbits 4 --group 32 --samples 8 --seq-len 128 --json");
    QVERIFY2(r.status == 0, r.out.c_str());
    const auto run_ppl =
        last_json(run_cli("eval --run " + quoted(dir + "/run") + " --text " + quoted(text) + " --seq-len 512 --json")
                      .out)["ppl"]
            .get<double>();
    for (const auto& [format, bound] : {std::pair<std::string, double>{"gguf-f32", 1e-6}, {"gguf-f16", 5e-5}}) {
      const auto gguf = dir + "/" + format + ".gguf";
      r = run_cli("export --run " + quoted(dir + "/run") + " --format " + format + " --out " + quoted(gguf));
      QVERIFY2(r.status == 0, r.out.c_str());
      TesseraView file;
      compare(gguf, text, bound, "W4 g32 RTN run, " + format, &file);
      if (format == "gguf-f32") {  // the file is the run: same perplexity, same greedy text as generate --run
        QCOMPARE(file.ppl, run_ppl);
        const auto from_run = last_json(run_cli("generate --run " + quoted(dir + "/run") + " --max-tokens " +
                                                std::to_string(kGreedyTokens) + " --json")
                                            .out);
        QVERIFY(!from_run.value("text", std::string()).empty());
        QCOMPARE(from_run.value("text", std::string()), file.greedy);
      }
    }
  }

  // Runs quantized onto each GGUF block type's grid (--target) export as those blocks bit-exactly:
  // Tessera scores the file exactly as the run, and llama.cpp within kBlockBound.
  void blockTypeExportsMatch() {
    REQUIRE_LLAMA_CPP();
    TESSERA_REQUIRE_DATA(model, kModel);
    TESSERA_REQUIRE_DATA(text, kText);
    TESSERA_REQUIRE_DATA(calib, "text/tinystories/train-sample.txt");
    const auto dir = tessera_test::fresh_temp_dir("llama-cpp-targets");
    for (const std::string target : {"gguf-q4_0", "gguf-q4_1", "gguf-q5_0", "gguf-q5_1", "gguf-q8_0"}) {
      awq_run_on_target_matches(model, calib, text, dir + "/" + target, target, kBlockBound, "AWQ run on " + target);
    }
  }

  // The k-quant targets need rows of whole 256-weight super-blocks, which no real model here has:
  // stories260K widened with zeros to rows of 256 (tests/support/synthetic_model.h; it computes
  // stories260K's function). Each run exports bit-exactly (Tessera scores the file as the run) and
  // llama.cpp, which rounds activations to 8 bits per 256 (Q8_K) for these types, within
  // kKQuantBound.
  void kQuantExportsMatch() {
    REQUIRE_LLAMA_CPP();
    TESSERA_REQUIRE_DATA(text, kText);
    TESSERA_REQUIRE_DATA(calib, "text/tinystories/train-sample.txt");
    const auto dir = tessera_test::fresh_temp_dir("llama-cpp-k-quants");
    const auto model = tessera_test::write_wide_stories260k(dir + "/model");
    QVERIFY(!model.empty());
    for (const std::string target : {"gguf-q2_k", "gguf-q3_k", "gguf-q4_k", "gguf-q5_k", "gguf-q6_k"}) {
      awq_run_on_target_matches(model, calib, text, dir + "/" + target, target,
                                target == "gguf-q2_k" ? kQ2KBound : kKQuantBound,
                                "AWQ run on " + target + " (wide stories260K)");
    }
    // The Q2_K run's weights (which its file decodes to bit for bit, by the export's self-check)
    // in an F32 file: llama.cpp gives the run's perplexity to 1e-6, so the Q2_K file's larger
    // difference is its 8-bit activations alone.
    const auto run = dir + "/gguf-q2_k", f32 = run + "-f32.gguf";
    const auto r = run_cli("export --run " + quoted(run) + " --format gguf-f32 --out " + quoted(f32) + " --json");
    QVERIFY2(r.status == 0, r.out.c_str());
    compare(f32, text, 1e-6, "the Q2_K run's weights as F32");
  }

  // llama.cpp's per-tensor fallback types (llama-quant.cpp, llama_tensor_get_type; Tessera's
  // quant/grid_target.h): stories260K widened to width 256 with an FFN of 320, whose down_proj
  // takes Q5_0 / Q5_1 / Q8_0 under Q4_K / Q5_K / Q6_K, and stories260K itself under Q4_K (width
  // 64: every Linear Q5_0; FFN 172: down_proj F16) and under Q3_K (every Linear IQ4_NL, down_proj
  // F16). llama.cpp loads each file and gives the run's perplexity within kKQuantBound (IQ4_NL:
  // 2.2e-4 measured); the export report lists the fallbacks.
  // Greedy texts: the Q4_K / Q5_0 file of the FFN-320 model continues "pretend to choose" in
  // llama.cpp and "pretend to color" in Tessera after 102 shared characters (perplexities 7.5e-4
  // apart), so these compare the first 80 characters.
  void kQuantFallbackExportsMatch() {
    REQUIRE_LLAMA_CPP();
    TESSERA_REQUIRE_DATA(stories, kModel);
    TESSERA_REQUIRE_DATA(sample, kText);
    TESSERA_REQUIRE_DATA(calib, "text/tinystories/train-sample.txt");
    const auto text = tessera_test::text_excerpt(sample, kExcerptBytes);
    const auto dir = tessera_test::fresh_temp_dir("llama-cpp-k-quant-fallbacks");
    const auto ffn320 = tessera_test::write_wide_stories260k(dir + "/ffn320", 320);
    QVERIFY(!ffn320.empty());
    struct Case {
      std::string model, name, target, down_type;
      std::size_t fallbacks;  // tensors listed in the report (5 blocks)
    };
    for (const auto& c : std::vector<Case>{{ffn320, "ffn320", "gguf-q4_k", "Q5_0", 5},
                                           {ffn320, "ffn320", "gguf-q5_k", "Q5_1", 5},
                                           {ffn320, "ffn320", "gguf-q6_k", "Q8_0", 5},
                                           {stories, "stories260K", "gguf-q4_k", "F16", 35},
                                           {stories, "stories260K", "gguf-q3_k", "F16", 35}}) {
      json report;
      awq_run_on_target_matches(c.model, calib, text, dir + "/" + c.name + "-" + c.target, c.target, kKQuantBound,
                                "AWQ run on " + c.target + " (" + c.name + ")", &report, 80);
      const auto& listed = report["fallbacks"];
      QCOMPARE(listed.size(), c.fallbacks);
      bool down = false;
      for (const auto& t : listed)
        if (t["tensor"] == "blk.0.ffn_down.weight") down = t["type"] == c.down_type;
      QVERIFY2(down, listed.dump().c_str());
    }
  }
};

TESSERA_TEST_MAIN(TestLlamaCpp, unquantizedConversionsMatch, tokenizerJsonModelMatches,
                  byteLevelTokenizerJsonModelMatches, quantizedRunExportsMatch, blockTypeExportsMatch,
                  kQuantExportsMatch, kQuantFallbackExportsMatch)
#ifdef TESSERA_TEST_WITH_QT
#include "test_llama_cpp.moc"
#endif
