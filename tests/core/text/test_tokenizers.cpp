// Tokenizers: exact counts on WikiText-2 with the Llama 2 SentencePiece model, the llama2.c
// algorithm checked against SentencePiece on the same vocabulary, and bad inputs.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include "tessera_test.h"
#include "test_data.h"
#include "text/calibration.h"
#include "text/llama2c_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/text_file.h"
#include "text/tokenizer_loader.h"

using namespace tessera;

namespace {

const char* kLlama2 = "tokenizers/llama2/tokenizer.model";
const char* kTok512 = "models/stories260K/tok512.bin";

// Writes the Llama 2 vocabulary in llama2.c's tokenizer.bin format, the way llama2.c's
// tokenizer.py exports it ("▁" -> " ", BOS/EOS as "\n<s>\n" / "\n</s>\n").
std::string export_llama2c_tokenizer(const text::SentencePieceTokenizer& sp, const std::string& path) {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::int32_t max_len = 0;
  for (std::int32_t id = 0; id < sp.vocab_size(); ++id) {
    std::string p = sp.piece(id);
    if (id == sp.bos_id())
      p = "\n<s>\n";
    else if (id == sp.eos_id())
      p = "\n</s>\n";
    std::string out;
    for (std::size_t i = 0; i < p.size();) {
      if (p.compare(i, 3, "\xE2\x96\x81") == 0) {
        out.push_back(' ');
        i += 3;
      } else
        out.push_back(p[i++]);
    }
    max_len = std::max<std::int32_t>(max_len, static_cast<std::int32_t>(out.size()));
    pieces.push_back(out);
    scores.push_back(sp.score(id));
  }
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(&max_len), 4);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const auto len = static_cast<std::int32_t>(pieces[i].size());
    f.write(reinterpret_cast<const char*>(&scores[i]), 4);
    f.write(reinterpret_cast<const char*>(&len), 4);
    f.write(pieces[i].data(), len);
  }
  return path;
}

// run.c's merge loop, verbatim in spirit: scan all pairs every round (quadratic, for short texts).
std::vector<std::int32_t> naive_run_c_encode(const text::Llama2cTokenizer& tok, const std::string& text) {
  // Start from the unmerged code points (dummy prefix first), as run.c does.
  std::vector<std::int32_t> tokens;
  std::vector<std::string> pieces;
  for (std::int32_t id = 0; id < tok.vocab_size(); ++id) pieces.push_back(tok.piece(id));
  auto lookup = [&](const std::string& s) -> std::int32_t {
    for (std::size_t i = 0; i < pieces.size(); ++i)
      if (pieces[i] == s) return static_cast<std::int32_t>(i);
    return -1;
  };
  tokens.push_back(lookup(" "));
  for (std::size_t i = 0; i < text.size();) {
    std::size_t len = 1;
    while (i + len < text.size() && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80 && len < 4) ++len;
    const auto id = lookup(text.substr(i, len));
    if (id >= 0)
      tokens.push_back(id);
    else
      for (std::size_t b = 0; b < len; ++b) tokens.push_back(static_cast<unsigned char>(text[i + b]) + 3);
    i += len;
  }
  while (true) {
    float best = -std::numeric_limits<float>::infinity();
    std::int32_t best_id = -1;
    std::size_t best_i = 0;
    for (std::size_t i = 0; i + 1 < tokens.size(); ++i) {
      const auto id = lookup(pieces[tokens[i]] + pieces[tokens[i + 1]]);
      if (id >= 0) {
        const float score = tok.score(id);
        if (score > best) {
          best = score;
          best_id = id;
          best_i = i;
        }
      }
    }
    if (best_id < 0) break;
    tokens[best_i] = best_id;
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
  }
  return tokens;
}

}  // namespace

class TestTokenizers : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void llama2TokenizerCountsWikiText2Exactly() {
    TESSERA_REQUIRE_DATA(model, kLlama2);
    TESSERA_REQUIRE_DATA(wiki, "text/wikitext-2-raw/wiki.test.joined.txt");
    text::SentencePieceTokenizer sp(model);
    QCOMPARE(sp.vocab_size(), std::int64_t(32000));
    QCOMPARE(sp.bos_id(), 1);
    const std::string text = text::read_text_file(wiki);
    QCOMPARE(sp.encode(text, true, false).size(), std::size_t(341469));
    QCOMPARE(sp.encode(text, false, false).size(), std::size_t(341468));
  }

  void llama2cAlgorithmMatchesSentencePieceOnLlama2Vocabulary() {
    // llama2.c's encoder applied to the Llama 2 vocabulary must reproduce SentencePiece's ids.
    TESSERA_REQUIRE_DATA(model, kLlama2);
    TESSERA_REQUIRE_DATA(wiki, "text/wikitext-2-raw/wiki.test.raw");
    text::SentencePieceTokenizer sp(model);
    const auto bin = export_llama2c_tokenizer(sp, tessera_test::fresh_temp_dir("tok-export") + "/tokenizer.bin");
    text::Llama2cTokenizer l2c(bin);
    QCOMPARE(l2c.vocab_size(), std::int64_t(32000));
    std::vector<std::string> samples = {"Hello world", "The quick brown fox, 1984 and 3.14159!", "naïve café – déjà vu",
                                        "emoji 🦙 and 中文", "tabs\tand  double  spaces"};
    std::ifstream in(wiki);
    std::string line;
    for (int i = 0; i < 200 && std::getline(in, line);) {
      if (line.find_first_not_of(' ') == std::string::npos) continue;
      samples.push_back(line.substr(1));  // wiki.test.raw lines start with a space
      ++i;
    }
    for (const auto& s : samples) {
      const auto a = l2c.encode(s, true, false), b = sp.encode(s, true, false);
      QVERIFY2(a == b, ("llama2.c and SentencePiece differ on: " + s).c_str());
    }
  }

  void fastMergeEqualsRunCLoop() {
    TESSERA_REQUIRE_DATA(tok, kTok512);
    text::Llama2cTokenizer t(tok);
    for (const std::string s : {"Once upon a time, there was a little girl named Lily.",
                                "She said, \"Let's go!\" and ran   away... 123 456", "x"}) {
      const auto fast = t.encode(s, false, false);
      const auto slow = naive_run_c_encode(t, s);
      QVERIFY2(fast == slow, ("heap merge differs from run.c's loop on: " + s).c_str());
    }
  }

  void llama2cDecodeRoundTripsWithByteFallback() {
    TESSERA_REQUIRE_DATA(tok, kTok512);
    text::Llama2cTokenizer t(tok);
    const std::string s = "Tom paid 5€ for a 🦙.\nThe end";
    const auto ids = t.encode(s, true, false);
    QCOMPARE(ids.front(), 1);
    // The llama emoji (F0 9F A6 99) is not in the 512-token vocabulary: it must go through
    // <0xNN> byte tokens (id = byte + 3).
    const bool has_byte_tokens =
        std::count(ids.begin(), ids.end(), 0xF0 + 3) == 1 && std::count(ids.begin(), ids.end(), 0x99 + 3) == 1;
    QVERIFY(has_byte_tokens);
    QCOMPARE(t.decode(ids), s);
  }

  void emptyTextGivesOnlyBos() {
    TESSERA_REQUIRE_DATA(tok, kTok512);
    text::Llama2cTokenizer t(tok);
    QVERIFY(t.encode("", true, false) == std::vector<std::int32_t>{1});
  }

  void tokenizerModelVocabMismatchIsReported() {
    TESSERA_REQUIRE_DATA(model, kLlama2);
    text::SentencePieceTokenizer sp(model);
    TESSERA_VERIFY_THROWS_WITH(text::check_tokenizer_matches_model(sp, 512, "stories260K.bin"),
                               "not the model's tokenizer");
  }

  void damagedTokenizerFilesAreRejected() {
    TESSERA_REQUIRE_DATA(tok, kTok512);
    const auto dir = tessera_test::fresh_temp_dir("tok-bad");
    {
      std::ifstream in(tok, std::ios::binary);
      std::string buf(1000, '\0');
      in.read(buf.data(), 1000);
      std::ofstream(dir + "/cut.bin", std::ios::binary).write(buf.data(), 1000);
    }
    TESSERA_VERIFY_THROWS_WITH(text::Llama2cTokenizer(dir + "/cut.bin"), "truncated llama2.c tokenizer");
    std::ofstream(dir + "/fake.model") << "this is not a protobuf";
    TESSERA_VERIFY_THROWS_WITH(text::load_tokenizer(dir + "/fake.model"), "not a SentencePiece model");
    std::ofstream(dir + "/tokenizer.txt") << "x";
    TESSERA_VERIFY_THROWS_WITH(text::load_tokenizer(dir + "/tokenizer.txt"), "unknown tokenizer type");
  }

  void emptyTextFileIsRejected() {
    const auto dir = tessera_test::fresh_temp_dir("empty-text");
    std::ofstream(dir + "/empty.txt") << "  \n\n";
    TESSERA_VERIFY_THROWS_WITH(text::read_text_file(dir + "/empty.txt"), "is empty");
    TESSERA_VERIFY_THROWS_WITH(text::read_text_file(dir + "/absent.txt"), "cannot open");
  }

  void textIsReadWithUniversalNewlines() {
    QCOMPARE(text::universal_newlines("a\r\nb\rc\n\r\r\nd\r"), std::string("a\nb\nc\n\n\nd\n"));
    const auto dir = tessera_test::fresh_temp_dir("newlines");
    std::ofstream(dir + "/crlf.txt", std::ios::binary) << "Once upon a time.\r\nThe end.\r\n";
    std::ofstream(dir + "/lf.txt", std::ios::binary) << "Once upon a time.\nThe end.\n";
    QCOMPARE(text::read_text_file(dir + "/crlf.txt"), text::read_text_file(dir + "/lf.txt"));
    // A JSON-lines corpus with CRLF line ends: lines split as Python's text mode splits them; a
    // "\r" escaped inside the JSON string is content and stays (as json.loads keeps it).
    std::ofstream(dir + "/c.jsonl", std::ios::binary) << "{\"text\": \"a\\r\\nb\"}\r\n{\"text\": \"c\"}\r\n";
    QCOMPARE(text::read_corpus(dir + "/c.jsonl"), std::string("a\r\nb\n\nc"));
    // The real CRLF file: the same ids as the file with its "\r" removed.
    TESSERA_REQUIRE_DATA(sample, "text/tinystories/sample.txt");
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    std::ifstream in(sample, std::ios::binary);
    std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), lf;
    QVERIFY(raw.find("\r\n") != std::string::npos);
    for (char c : raw)
      if (c != '\r') lf += c;
    const auto tok = text::load_tokenizer(text::find_tokenizer_for_model(model));
    const auto ids = tok->encode(text::read_text_file(sample), true, false);
    QCOMPARE(ids.size(), std::size_t(15537));
    QVERIFY(ids == tok->encode(lf, true, false));
  }

  void tokenizerIsFoundBesideModel() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    QVERIFY(text::find_tokenizer_for_model(model).find("tok512.bin") != std::string::npos);
  }
};

TESSERA_TEST_MAIN(TestTokenizers, llama2TokenizerCountsWikiText2Exactly,
                  llama2cAlgorithmMatchesSentencePieceOnLlama2Vocabulary, fastMergeEqualsRunCLoop,
                  llama2cDecodeRoundTripsWithByteFallback, emptyTextGivesOnlyBos, tokenizerModelVocabMismatchIsReported,
                  damagedTokenizerFilesAreRejected, emptyTextFileIsRejected, textIsReadWithUniversalNewlines,
                  tokenizerIsFoundBesideModel)
#ifdef TESSERA_TEST_WITH_QT
#include "test_tokenizers.moc"
#endif
