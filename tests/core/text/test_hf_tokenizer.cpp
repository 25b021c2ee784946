// Hugging Face tokenizer.json (issue 7): golden ids derived by hand from TinyStories-656K's
// vocabulary and merges, small tokenizer.json files of both families written by the tests
// themselves, bad files, tokenizer discovery, and TinyStories-656K end to end (generate, eval on
// CPU and CUDA).
//
// How the TinyStories-656K goldens were derived (no Hugging Face `tokenizers` here): the
// normalizer turns the text into "▁" + text with every " " replaced by "▁"; there is no
// pre-tokenizer, so the whole normalized text is one BPE word. Its characters are looked up in
// model.vocab (the vocabulary has no <0xNN> byte tokens, so an unknown character becomes <unk>=0,
// consecutive ones fused), then the adjacent pair with the lowest rank in model.merges (its index
// in the list) is merged, leftmost first, until no pair has a merge. Vocabulary ids and merge
// ranks were looked up with python3's json module; each golden below lists the merges in the
// order they apply as "rank: a + b -> ab=id".
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "api/model_jobs.h"
#include "byte_level_bpe.h"
#include "tessera_test.h"
#include "test_data.h"
#include "test_device.h"
#include "text/gguf_vocabulary.h"
#include "text/hf_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/text_file.h"
#include "text/tokenizer_loader.h"

using namespace tessera;
using Ids = std::vector<std::int32_t>;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* kTinyStories = "models/TinyStories-656K";
const char* kValid = "text/tinystories/valid.txt";

std::string ids_text(const Ids& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

#define COMPARE_IDS(actual, expected)                                                                             \
  do {                                                                                                            \
    const Ids tessera_a = (actual), tessera_e = (expected);                                                       \
    QVERIFY2(tessera_a == tessera_e,                                                                              \
             (std::string(#actual) + " = " + ids_text(tessera_a) + ", expected " + ids_text(tessera_e)).c_str()); \
  } while (0)

std::string write_json(const std::string& dir, const std::string& name, const json& j) {
  fs::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::ofstream(path) << j.dump(1);
  return path;
}

std::string utf8_of(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// GPT-2's bytes_to_unicode, written from its definition: '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand
// for themselves, the 68 other bytes take U+0100, U+0101, ... in byte order.
std::string gpt2_char(int byte) {
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
    if (b == byte) return utf8_of(cp);
  }
  return "";
}

// A SentencePiece-style tokenizer.json in the Llama-2-hf layout: <unk>, <s>, </s> (special,
// normalized=false), the 256 byte tokens <0x00>..<0xFF> at ids 3..258, then
//   "▁"=259 "a"=260 "b"=261 "▁a"=262 "ab"=263 "▁ab"=264 "é"=265
// and the merges (strings "a b") rank 0 "▁ a", rank 1 "a b", rank 2 "▁a b".
json sentencepiece_style_tokenizer(bool metaspace) {
  json vocab = json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  vocab["\xE2\x96\x81"] = 259;
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab
      ["\xE2\x96\x81"
       "a"] = 262;
  vocab["ab"] = 263;
  vocab
      ["\xE2\x96\x81"
       "ab"] = 264;
  vocab["\xC3\xA9"] = 265;
  json t;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = json::array();
  int id = 0;
  for (const char* s : {"<unk>", "<s>", "</s>"})
    t["added_tokens"].push_back({{"id", id++},
                                 {"content", s},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", false},
                                 {"special", true}});
  if (metaspace) {
    // The newer conversion: a Metaspace pre-tokenizer that prepends "▁" only at the text's start.
    t["normalizer"] = nullptr;
    t["pre_tokenizer"] = {
        {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}};
    t["decoder"] = {
        {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}};
  } else {
    t["normalizer"] = {{"type", "Sequence"},
                       {"normalizers",
                        {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                         {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
    t["pre_tokenizer"] = nullptr;
    t["decoder"] = {{"type", "Sequence"},
                    {"decoders",
                     {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  }
  t["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", "<unk>"},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", true},
                {"vocab", vocab},
                {"merges",
                 {"\xE2\x96\x81 a", "a b",
                  "\xE2\x96\x81"
                  "a b"}}};
  return t;
}

// A byte-level tokenizer.json. Ids 0..255 are the 256 byte characters (id = byte value, so "Ġ"
// (space) = 32, "Ċ" (newline) = 10, "t" = 116), then the merges, written as pairs ["a", "b"]:
//   rank 0  Ġ + t       -> Ġt     = 256      rank 7  Ċ + Ċ      -> ĊĊ      = 263
//   rank 1  h + e       -> he     = 257      rank 8  1 + 2      -> 12      = 264
//   rank 2  t + he      -> the    = 258      rank 9  Ã + ©      -> Ã©      = 265 (é's bytes C3 A9)
//   rank 3  l + l       -> ll     = 259      rank 10 c + a      -> ca      = 266
//   rank 4  he + ll     -> hell   = 260      rank 11 ca + f     -> caf     = 267
//   rank 5  hell + o    -> hello  = 261      rank 12 Ġ + caf    -> Ġcaf    = 268
//   rank 6  Ġ + hello   -> Ġhello = 262      rank 13 Ġcaf + Ã©  -> ĠcafÃ©  = 269
// plus "Ġworld" = 270, which no merge makes (reached only through ignore_merges), and the added
// tokens <|begin_of_text|> = 271, <|end_of_text|> = 272 (special, normalized=false).
// llama3: LLaMA-3's Split(regex) + ByteLevel(use_regex=false), ignore_merges, a TemplateProcessing
// that adds <|begin_of_text|>. Otherwise GPT-2's ByteLevel(add_prefix_space, use_regex), a
// ByteLevel post-processor (adds nothing, as Qwen2) and a plain added token "<tool>" = 273 with
// lstrip and rstrip.
json byte_level_tokenizer(bool llama3) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[gpt2_char(b)] = b;
  const std::string G = gpt2_char(' '), C = gpt2_char('\n'), A3 = gpt2_char(0xC3), A9 = gpt2_char(0xA9);
  const std::vector<std::pair<std::string, std::string>> merges = {
      {G, "t"}, {"h", "e"}, {"t", "he"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {G, "hello"},
      {C, C},   {"1", "2"}, {A3, A9},    {"c", "a"}, {"ca", "f"},  {G, "caf"},    {G + "caf", A3 + A9}};
  json merge_list = json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    merge_list.push_back({a, b});
  }
  vocab[G + "world"] = 270;
  json t;
  t["version"] = "1.0";
  t["added_tokens"] = json::array();
  for (const auto& [tid, s] :
       std::vector<std::pair<int, std::string>>{{271, "<|begin_of_text|>"}, {272, "<|end_of_text|>"}})
    t["added_tokens"].push_back({{"id", tid},
                                 {"content", s},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", false},
                                 {"special", true}});
  t["normalizer"] = nullptr;
  t["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  if (llama3) {
    const std::string pattern =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    t["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
    t["post_processor"] = {
        {"type", "Sequence"},
        {"processors",
         {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
          {{"type", "TemplateProcessing"},
           {"single",
            {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
           {"pair", json::array()},
           {"special_tokens",
            {{"<|begin_of_text|>",
              {{"id", "<|begin_of_text|>"}, {"ids", {271}}, {"tokens", {"<|begin_of_text|>"}}}}}}}}}};
  } else {
    t["added_tokens"].push_back({{"id", 273},
                                 {"content", "<tool>"},
                                 {"single_word", false},
                                 {"lstrip", true},
                                 {"rstrip", true},
                                 {"normalized", false},
                                 {"special", false}});
    t["pre_tokenizer"] = {
        {"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    t["post_processor"] = {
        {"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  }
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", llama3},
                {"vocab", vocab},
                {"merges", merge_list}};
  return t;
}

// The Llama 2 SentencePiece model written as a Llama-2-hf tokenizer.json, the way transformers'
// LlamaConverter does: the same vocabulary; merges from every split of every piece into two
// pieces, ordered by the merged piece's score (highest first), ties by (left id, right id);
// Prepend/Replace normalizers, byte fallback, <s> added by the post-processor.
json llama2_tokenizer_json(const text::SentencePieceTokenizer& sp) {
  const auto n = static_cast<std::int32_t>(sp.vocab_size());
  std::map<std::string, std::int32_t> ids;
  std::vector<std::string> pieces;
  for (std::int32_t i = 0; i < n; ++i) {
    pieces.push_back(sp.piece(i));
    ids.emplace(pieces.back(), i);
  }
  struct Merge {
    std::string left, right;
    float score;
  };
  std::vector<Merge> merges;
  for (std::int32_t i = 0; i < n; ++i) {
    const std::string& p = pieces[static_cast<std::size_t>(i)];
    std::vector<std::pair<std::int32_t, std::int32_t>> local;
    for (std::size_t k = 1; k < p.size(); ++k) {
      if ((static_cast<unsigned char>(p[k]) & 0xC0) == 0x80) continue;  // split between characters
      auto a = ids.find(p.substr(0, k)), b = ids.find(p.substr(k));
      if (a != ids.end() && b != ids.end()) local.emplace_back(a->second, b->second);
    }
    std::sort(local.begin(), local.end());
    for (const auto& [a, b] : local)
      merges.push_back({pieces[static_cast<std::size_t>(a)], pieces[static_cast<std::size_t>(b)], sp.score(i)});
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& x, const Merge& y) { return x.score > y.score; });
  json vocab = json::object(), merge_list = json::array();
  for (std::int32_t i = 0; i < n; ++i) vocab[pieces[static_cast<std::size_t>(i)]] = i;
  for (const auto& m : merges) merge_list.push_back(m.left + " " + m.right);
  json t = sentencepiece_style_tokenizer(false);  // the Llama-2-hf pipeline, with this vocabulary
  t["model"]["vocab"] = vocab;
  t["model"]["merges"] = merge_list;
  return t;
}

// The BPE merge loop written plainly (quadratic): merge the lowest-rank adjacent pair, leftmost
// first, until none is left. For TinyStories-656K's normalized text without added tokens.
Ids naive_tiny_stories_encode(const json& tok, const std::string& text) {
  const auto& vocab = tok["model"]["vocab"];
  std::map<std::pair<std::string, std::string>, int> rank;
  int r = 0;
  for (const auto& m : tok["model"]["merges"]) {
    const auto s = m.get<std::string>();
    rank.emplace(std::make_pair(s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)), r++);
  }
  std::string normalized = "\xE2\x96\x81";
  for (char c : text) {
    if (c == ' ')
      normalized += "\xE2\x96\x81";
    else
      normalized.push_back(c);
  }
  std::vector<std::string> symbols;
  for (std::size_t i = 0; i < normalized.size();) {
    std::size_t n = 1;
    while (i + n < normalized.size() && (static_cast<unsigned char>(normalized[i + n]) & 0xC0) == 0x80) ++n;
    std::string ch = normalized.substr(i, n);
    i += n;
    if (!vocab.contains(ch)) ch = "<unk>";
    if (ch == "<unk>" && !symbols.empty() && symbols.back() == "<unk>") continue;  // fuse_unk
    symbols.push_back(ch);
  }
  while (true) {
    int best = -1;
    std::size_t at = 0;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = rank.find({symbols[i], symbols[i + 1]});
      if (it != rank.end() && (best < 0 || it->second < best)) {
        best = it->second;
        at = i;
      }
    }
    if (best < 0) break;
    symbols[at] += symbols[at + 1];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
  Ids ids;
  for (const auto& s : symbols) ids.push_back(vocab[s].get<std::int32_t>());
  return ids;
}

}  // namespace

class TestHfTokenizer : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void tinyStoriesVocabularyAndSpecialIds() {
    TESSERA_REQUIRE_DATA(dir, kTinyStories);
    text::HfTokenizer t(dir + "/tokenizer.json");
    QCOMPARE(t.vocab_size(), std::int64_t(2048));
    QCOMPARE(t.bos_id(), 1);  // tokenizer_config.json: bos_token <|start_story|>
    QCOMPARE(t.eos_id(), 2);  // eos_token <|end_story|>
    QCOMPARE(t.kind(), std::string("tokenizer.json (BPE, sentencepiece-style)"));
    QVERIFY(!t.byte_level());
    QCOMPARE(t.token(80), std::string("\xE2\x96\x81"));
    QCOMPARE(t.token_id("<|start_story|>"), 1);
    QVERIFY(t.is_special(0) && t.is_special(1) && t.is_special(2) && !t.is_special(80));
  }

  void tinyStoriesGoldenIds() {
    TESSERA_REQUIRE_DATA(dir, kTinyStories);
    text::HfTokenizer t(dir + "/tokenizer.json");
    // Every encoding starts with <|start_story|>=1: add_bos_token is true and the TemplateProcessing
    // post-processor puts <|start_story|> before $A.

    // "Hello world" -> "▁Hello▁world": ▁=80 H=33 e=57 l=64 l=64 o=67 ▁=80 w=75 o=67 r=70 l=64 d=56;
    // 32: l+l -> ll=113; 36: o+r -> or=117; 58: o+▁ -> o▁=139; 329: w+or -> wor=410;
    // 389: e+ll -> ell=470; 474: l+d -> ld=555; 1207: H+ell -> Hell=1288. No merge starts with
    // the leading ▁ here, so it stays alone (this vocabulary attaches spaces to the word before).
    COMPARE_IDS(t.encode("Hello world", true, false), (Ids{1, 80, 1288, 139, 410, 555}));
    COMPARE_IDS(t.encode("Hello world", false, false), (Ids{80, 1288, 139, 410, 555}));

    // "Once upon a time, there was a little girl named Lily." -> "▁Once▁upon▁a▁time,▁there▁was▁a▁
    // little▁girl▁named▁Lily.": 0: e+▁ -> e▁=81 (three times, leftmost first); 1: d+▁ -> d▁=82;
    // 2: t+h -> th=83; 4: ▁+a -> ▁a=85 (twice); 10: e+r -> er=91; 11: e+d▁ -> ed▁=92;
    // 13: ,+▁ -> ,▁=94; 14: w+a -> wa=95; 23: ▁a+▁ -> ▁a▁=104 (twice); 29: i+m -> im=110;
    // 30: o+n -> on=111; 38: i+t -> it=119; 45: i+r -> ir=126; 46: a+m -> am=127; 48: i+l -> il=129;
    // 64: er+e▁ -> ere▁=145; 66: O+n -> On=147; 96: l+e▁ -> le▁=177; 108: u+p -> up=189;
    // 116: wa+s -> was=197; 119: l+▁ -> l▁=200; 120: c+e▁ -> ce▁=201; 126: it+t -> itt=207;
    // 134: e+,▁ -> e,▁=215; 135: L+il -> Lil=216; 144: itt+le▁ -> ittle▁=225;
    // 145: was+▁a▁ -> was▁a▁=226; 148: l+ittle▁ -> little▁=229; 149: t+im -> tim=230;
    // 155: n+am -> nam=236; 160: nam+ed▁ -> named▁=241; 167: th+ere▁ -> there▁=248;
    // 178: on+▁a▁ -> on▁a▁=259; 200: up+on▁a▁ -> upon▁a▁=281; 201: upon▁a▁+tim -> upon▁a▁tim=282;
    // 205: there▁+was▁a▁ -> there▁was▁a▁=286; 243: g+ir -> gir=324; 281: gir+l▁ -> girl▁=362;
    // 370: little▁+girl▁ -> little▁girl▁=451; 517: little▁girl▁+named▁ -> little▁girl▁named▁=598;
    // 548: Lil+y -> Lily=629. Left: ▁ On ce▁ upon▁a▁tim e,▁ there▁was▁a▁ little▁girl▁named▁ Lily .(=10)
    COMPARE_IDS(t.encode("Once upon a time, there was a little girl named Lily.", true, false),
                (Ids{1, 80, 147, 201, 282, 215, 286, 598, 629, 10}));

    // Leading, trailing and double spaces: "  two  spaces  " -> "▁▁▁two▁▁spaces▁▁" (Prepend adds
    // one ▁, Replace turns each space into one): 8: s+▁ -> s▁=89; 58: o+▁ -> o▁=139;
    // 287: e+s▁ -> es▁=368; 334: s+p -> sp=415; 784: t+w -> tw=865; 1128: tw+o▁ -> two▁=1209.
    // "a", "c" (53, 55) have no merge with their neighbours; the three leading ▁ and the last one
    // stay alone (80).
    COMPARE_IDS(t.encode("  two  spaces  ", true, false), (Ids{1, 80, 80, 80, 1209, 80, 415, 53, 55, 368, 80}));

    // " a" -> "▁▁a": 4: ▁+a -> ▁a=85 takes the second ▁, the first stays alone.
    COMPARE_IDS(t.encode(" a", true, false), (Ids{1, 80, 85}));

    // Newlines: "The end.\n\nOnce" -> "▁The▁end.\n\nOnce": 0: e+▁ -> e▁=81; 16: h+e▁ -> he▁=97;
    // 21: e+n -> en=102; 41: .+\n -> .\n=122; 66: O+n -> On=147; 102: en+d -> end=183;
    // 166: T+he▁ -> The▁=247; 601: c+e -> ce=682. The second \n (=3) stays alone.
    COMPARE_IDS(t.encode("The end.\n\nOnce", true, false), (Ids{1, 80, 247, 183, 122, 3, 147, 682}));

    // Digits: "In 2023 she had 15 cats." -> "▁In▁2023▁she▁had▁15▁cats.": no merge joins digits
    // (0..9 = 11..20): 0: e+▁ -> e▁=81; 1: d+▁ -> d▁=82; 16: h+e▁ -> he▁=97; 24: h+a -> ha=105;
    // 117: ha+d▁ -> had▁=198; 151: a+t -> at=232; 161: s+he▁ -> she▁=242; 395: c+at -> cat=476;
    // 673: n+▁ -> n▁=754. Left: ▁ I n▁ 2 0 2 3 ▁ she▁ had▁ 1 5 ▁ cat s .
    COMPARE_IDS(t.encode("In 2023 she had 15 cats.", true, false),
                (Ids{1, 80, 34, 754, 13, 11, 13, 14, 80, 242, 198, 12, 16, 80, 476, 71, 10}));

    // Non-ASCII: byte_fallback is on, but this vocabulary has no <0xNN> tokens, so characters
    // outside it (ï, 日, 本, 🦙) become <unk>=0, and fuse_unk makes 日本 one <unk>.
    // "▁naïve▁日本▁🦙!": ▁=80 n=66 a=53 <unk> v=74 e=57 ▁ <unk> ▁ <unk> !=4;
    // 0: e+▁ -> e▁=81; 137: v+e▁ -> ve▁=218; 476: n+a -> na=557.
    COMPARE_IDS(t.encode("na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x99!", true, false),
                (Ids{1, 80, 557, 0, 218, 0, 80, 0, 4}));

    // The empty text is BOS alone (nothing without it).
    COMPARE_IDS(t.encode("", true, false), (Ids{1}));
    COMPARE_IDS(t.encode("", false, false), (Ids{}));
    // add_eos_token is false: asking for the end tokens adds nothing.
    COMPARE_IDS(t.encode("Hello world", true, true), (Ids{1, 80, 1288, 139, 410, 555}));
  }

  void tinyStoriesSpecialTokens() {
    TESSERA_REQUIRE_DATA(dir, kTinyStories);
    text::HfTokenizer t(dir + "/tokenizer.json");
    // The added tokens have normalized=true, so `tokenizers` matches their normalized form
    // (Prepend gives "▁<|start_story|>", "▁<|end_story|>", "▁<unk>") in the normalized text.
    // "<|start_story|>Once upon a time" -> "▁<|start_story|>Once▁upon▁a▁time": the added token
    // takes "▁<|start_story|>" (=1), after the BOS the post-processor adds (=1). The rest,
    // "Once▁upon▁a▁time", has no leading ▁: O=40 n=66 c=55 e=57 ▁ u=73 p=68 o=67 n ▁ a=53 ▁ t=72
    // i=61 m=65 e; 0: e+▁ -> e▁=81; 4: ▁+a -> ▁a=85; 23: ▁a+▁ -> ▁a▁=104; 29: i+m -> im=110;
    // 30: o+n -> on=111; 66: O+n -> On=147; 108: u+p -> up=189; 120: c+e▁ -> ce▁=201;
    // 149: t+im -> tim=230; 178: on+▁a▁ -> on▁a▁=259; 200: up+on▁a▁ -> upon▁a▁=281;
    // 201: upon▁a▁+tim -> upon▁a▁tim=282. Left: On ce▁ upon▁a▁tim e(=57).
    COMPARE_IDS(t.encode("<|start_story|>Once upon a time", true, false), (Ids{1, 1, 147, 201, 282, 57}));
    // "Hi <|end_story|> there" -> "▁Hi▁<|end_story|>▁there": "▁Hi" | "▁<|end_story|>"=2 | "▁there".
    // "▁Hi": 1077: H+i -> Hi=1158. "▁there": 2: t+h -> th=83; 10: e+r -> er=91;
    // 168: th+er -> ther=249; e=57 stays.
    COMPARE_IDS(t.encode("Hi <|end_story|> there", true, false), (Ids{1, 80, 1158, 2, 80, 249, 57}));
    // "a<|end_story|>" -> "▁a<|end_story|>": no "▁<|end_story|>" in it, so the text is BPE-encoded:
    // 4: ▁+a -> ▁a=85; 7: t+o -> to=88; 21: e+n -> en=102; 74: r+y -> ry=155; 81: s+to -> sto=162;
    // 102: en+d -> end=183; 124: sto+ry -> story=205; 127: <+| -> <|=208; 128: _+story -> _story=209;
    // 129: |+> -> |>=210.
    COMPARE_IDS(t.encode("a<|end_story|>", true, false), (Ids{1, 85, 208, 183, 209, 210}));
    // "<unk>" -> "▁<unk>", the added token <unk>=0.
    COMPARE_IDS(t.encode("<unk>", true, false), (Ids{1, 0}));
    // Special tokens decode to nothing (skip_special_tokens), as in generation.
    QCOMPARE(t.decode_token(-1, 1), std::string());
    QCOMPARE(t.decode_token(80, 2), std::string());
    QCOMPARE(t.decode_token(80, 0), std::string());
    QCOMPARE(t.decode(Ids{1, 80, 1158, 2, 80, 249, 57}), std::string("Hi there"));
  }

  void tinyStoriesDecodeRoundTrips() {
    TESSERA_REQUIRE_DATA(dir, kTinyStories);
    text::HfTokenizer t(dir + "/tokenizer.json");
    for (const std::string s :
         {"Once upon a time, there was a little girl named Lily.", "Hello world", "  two  spaces  ", " a",
          "The end.\n\nOnce", "In 2023 she had 15 cats.", "x\ny\n", "\"Wow!\" said Tom. 'Let's go?'"}) {
      QCOMPARE(t.decode(t.encode(s, true, false)), s);
      QCOMPARE(t.decode(t.encode(s, false, false)), s);
    }
    // The decoders: Replace ▁ -> " ", Fuse, Strip one leading space from the text's first token
    // (after BOS or at the start), not from later ones.
    QCOMPARE(t.decode_token(1, 81), std::string("e "));
    QCOMPARE(t.decode_token(1, 85), std::string("a"));  // "▁a" first: stripped
    QCOMPARE(t.decode_token(-1, 85), std::string("a"));
    QCOMPARE(t.decode_token(139, 85), std::string(" a"));  // later: kept
    // Unknown characters come back as nothing (<unk> is special).
    QCOMPARE(t.decode(t.encode("na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x99!", true, false)),
             std::string("nave  !"));
    TESSERA_VERIFY_THROWS_WITH(t.decode_token(1, 2048), "outside the tokenizer's vocabulary");
  }

  void tinyStoriesHeapMergeEqualsPlainLoop() {
    // The O(n log n) merge must apply the same merges as the plain loop on real text.
    TESSERA_REQUIRE_DATA(dir, kTinyStories);
    TESSERA_REQUIRE_DATA(valid, kValid);
    text::HfTokenizer t(dir + "/tokenizer.json");
    json tok;
    std::ifstream(dir + "/tokenizer.json") >> tok;
    std::string text = text::read_text_file(valid).substr(0, 2000);
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();
    if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) text.pop_back();
    COMPARE_IDS(t.encode(text, false, false), naive_tiny_stories_encode(tok, text));
  }

  void tinyStoriesValidTextRoundTripsExceptUnknownCharacters() {
    TESSERA_REQUIRE_DATA(dir, kTinyStories);
    TESSERA_REQUIRE_DATA(valid, kValid);
    text::HfTokenizer t(dir + "/tokenizer.json");
    const std::string text = text::read_text_file(valid);
    const auto ids = t.encode(text, true, false);
    std::printf("valid.txt: %zu bytes -> %zu tokens\n", text.size(), ids.size());
    // Decoding gives the text back without the characters the vocabulary lacks (<unk>).
    std::string expected;
    for (std::size_t i = 0; i < text.size();) {
      std::size_t n = 1;
      while (i + n < text.size() && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
      const std::string ch = text.substr(i, n);
      if (ch == " " || t.token_id(ch) >= 0) expected += ch;
      i += n;
    }
    QVERIFY2(t.decode(ids) == expected, "valid.txt does not decode back to its text");
  }

  void llama2AsTokenizerJsonMatchesSentencePiece() {
    // A real-size SentencePiece-style tokenizer.json (32000 tokens, 61249 merges, byte fallback)
    // must give SentencePiece's own ids, and WikiText-2's exact count (test_tokenizers).
    TESSERA_REQUIRE_DATA(model, "tokenizers/llama2/tokenizer.model");
    TESSERA_REQUIRE_DATA(wiki, "text/wikitext-2-raw/wiki.test.raw");
    TESSERA_REQUIRE_DATA(joined, "text/wikitext-2-raw/wiki.test.joined.txt");
    text::SentencePieceTokenizer sp(model);
    const json j = llama2_tokenizer_json(sp);
    QCOMPARE(j["model"]["merges"].size(), std::size_t(61249));  // as in Llama-2-hf's tokenizer.json
    text::HfTokenizer hf(write_json(tessera_test::fresh_temp_dir("hf-llama2"), "tokenizer.json", j));
    QCOMPARE(hf.vocab_size(), std::int64_t(32000));
    std::vector<std::string> samples = {"Hello world",
                                        "The quick brown fox, 1984 and 3.14159!",
                                        "na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x93 d\xC3\xA9j\xC3\xA0 vu",
                                        "emoji \xF0\x9F\xA6\x99 and \xE4\xB8\xAD\xE6\x96\x87",
                                        "tabs\tand  double  spaces",
                                        " leading",
                                        "trailing ",
                                        "a\n\nb"};
    std::ifstream in(wiki);
    std::string line;
    for (int i = 0; i < 300 && std::getline(in, line);) {
      if (line.find_first_not_of(' ') == std::string::npos) continue;
      samples.push_back(line.substr(1));  // wiki.test.raw lines start with a space
      ++i;
    }
    for (const auto& s : samples) {
      const auto a = hf.encode(s, true, false), b = sp.encode(s, true, false);
      QVERIFY2(
          a == b,
          ("tokenizer.json and SentencePiece differ on: " + s + "\n  " + ids_text(a) + "\n  " + ids_text(b)).c_str());
      QVERIFY2(hf.decode(a) == s, ("no round trip: " + s).c_str());
    }
    QCOMPARE(hf.encode(text::read_text_file(joined), true, false).size(), std::size_t(341469));
  }

  void sentencePieceStyleByteFallbackGolden() {
    const auto dir = tessera_test::fresh_temp_dir("hf-spm");
    text::HfTokenizer t(write_json(dir, "tokenizer.json", sentencepiece_style_tokenizer(false)));
    QCOMPARE(t.vocab_size(), std::int64_t(266));
    QCOMPARE(t.bos_id(), 1);   // no tokenizer_config.json: the template's one special token
    QCOMPARE(t.eos_id(), -1);  // nothing names an EOS
    // "ab</s>ab é€": </s> has normalized=false, so it is split off the raw text first; each part
    // is then normalized on its own (Prepend gives each its ▁, as Llama-2-hf's legacy mode does):
    // "▁ab": ▁ a b; rank 0: ▁+a -> ▁a; rank 2: ▁a+b -> ▁ab=264 ((a,b) rank 1 lost its a).
    // </s>=2. "▁ab▁é€": ▁ab=264 as before, ▁=259, é=265, € is not in the vocabulary: its UTF-8
    // bytes E2 82 AC become <0xE2>=3+0xE2=229, <0x82>=3+0x82=133, <0xAC>=3+0xAC=175.
    const std::string text = "ab</s>ab \xC3\xA9\xE2\x82\xAC";
    const Ids ids{1, 264, 2, 264, 259, 265, 229, 133, 175};
    COMPARE_IDS(t.encode(text, true, false), ids);
    // "aab" -> "▁aab": rank 0: ▁+a -> ▁a=262 (leftmost pair first); rank 1: a+b -> ab=263; no
    // merge for ▁a+ab.
    COMPARE_IDS(t.encode("aab", true, false), (Ids{1, 262, 263}));
    // Decoding: <s>, </s> skipped; ▁ -> " "; byte tokens give raw bytes that form "€"; the first
    // token's leading space stripped. The space Prepend added after </s> stays (as in HF).
    QCOMPARE(t.decode(ids), std::string("ab ab \xC3\xA9\xE2\x82\xAC"));
    QCOMPARE(t.decode_token(259, 229), std::string("\xE2"));
    QCOMPARE(t.decode(t.encode("aab", true, false)), std::string("aab"));
  }

  void metaspacePreTokenizerGolden() {
    const auto dir = tessera_test::fresh_temp_dir("hf-metaspace");
    text::HfTokenizer t(write_json(dir, "tokenizer.json", sentencepiece_style_tokenizer(true)));
    QCOMPARE(t.kind(), std::string("tokenizer.json (BPE, sentencepiece-style)"));
    // prepend_scheme "first": only the part at the start of the text gets "▁".
    // "ab" -> "▁ab"=264 (ranks 0 then 2); </s>=2; "ab" -> a b, rank 1: a+b -> ab=263.
    COMPARE_IDS(t.encode("ab</s>ab", true, false), (Ids{1, 264, 2, 263}));
    // "a ab" -> "▁a▁ab" (one word, split=false): rank 0 twice: ▁a=262, ▁a; rank 2: ▁a+b -> ▁ab=264.
    COMPARE_IDS(t.encode("a ab", true, false), (Ids{1, 262, 264}));
    // The Metaspace decoder drops the first token's ▁ and turns the others into spaces.
    QCOMPARE(t.decode(Ids{1, 262, 264}), std::string("a ab"));
    QCOMPARE(t.decode(Ids{1, 264, 2, 263}), std::string("abab"));
  }

  void byteLevelLlama3StyleGolden() {
    const auto dir = tessera_test::fresh_temp_dir("hf-bytelevel");
    const auto path = write_json(dir, "tokenizer.json", byte_level_tokenizer(true));
    write_json(dir, "tokenizer_config.json", {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|end_of_text|>"}});
    text::HfTokenizer t(path);
    QCOMPARE(t.kind(), std::string("tokenizer.json (BPE, byte-level)"));
    QCOMPARE(t.vocab_size(), std::int64_t(273));
    QCOMPARE(t.bos_id(), 271);
    QCOMPARE(t.eos_id(), 272);
    // "the hello the world\n\n12345 café🦙<|end_of_text|>": <|end_of_text|> (normalized=false) is
    // split off first (=272). LLaMA-3's regex cuts the rest into "the", " hello", " the", " world",
    // "\n\n" (\s*[\r\n]+), "123", "45" (\p{N}{1,3}), " café", "🦙" ( ?[^\s\p{L}\p{N}]+); each part's
    // bytes become GPT-2 characters and go through BPE:
    //   "the": t h e; rank 1: h+e -> he; rank 2: t+he -> the=258
    //   " hello": Ġ h e l l o; rank 1 he, rank 3 ll, rank 4 hell, rank 5 hello, rank 6 Ġhello=262
    //   " the": Ġ t h e; rank 0: Ġ+t -> Ġt=256 first, then rank 1: he=257; no merge Ġt+he
    //   " world": in the vocabulary whole, ignore_merges gives Ġworld=270 directly
    //   "\n\n": rank 7: Ċ+Ċ -> ĊĊ=263
    //   "123": rank 8: 1+2 -> 12=264, then 3=51;  "45": 4=52 5=53
    //   " café": Ġ c a f Ã ©; rank 9: Ã+© -> Ã©, rank 10 ca, rank 11 caf, rank 12 Ġcaf,
    //            rank 13: Ġcaf+Ã© -> ĠcafÃ©=269
    //   "🦙": bytes F0 9F A6 99 -> 240 159 166 153, no merges
    // and the TemplateProcessing adds <|begin_of_text|>=271 in front.
    const std::string text = "the hello the world\n\n12345 caf\xC3\xA9\xF0\x9F\xA6\x99<|end_of_text|>";
    const Ids ids{271, 258, 262, 256, 257, 270, 263, 264, 51, 52, 53, 269, 240, 159, 166, 153, 272};
    COMPARE_IDS(t.encode(text, true, false), ids);
    // Decoding maps the characters back to bytes; the special tokens are skipped.
    QCOMPARE(t.decode(ids), std::string("the hello the world\n\n12345 caf\xC3\xA9\xF0\x9F\xA6\x99"));
    QCOMPARE(t.decode_token(271, 262), std::string(" hello"));
    // "It's 1234567": "It", "'s" (the contraction alternative), " " (\s+ as the digits follow),
    // "123", "456", "7". I=73 t=116, '=39 s=115, Ġ=32, rank 8: 12=264 then 3=51, 4 5 6=52 53 54, 7=55.
    COMPARE_IDS(t.encode("It's 1234567", true, false), (Ids{271, 73, 116, 39, 115, 32, 264, 51, 52, 53, 54, 55}));
    QCOMPARE(t.decode(t.encode("It's 1234567", true, false)), std::string("It's 1234567"));
    TESSERA_VERIFY_THROWS_WITH(t.encode("bad \xFF byte", true, false), "not valid UTF-8");
  }

  void byteLevelGpt2StyleAddsNoBos() {
    const auto dir = tessera_test::fresh_temp_dir("hf-gpt2");
    text::HfTokenizer t(write_json(dir, "tokenizer.json", byte_level_tokenizer(false)));
    // The ByteLevel post-processor adds nothing and no tokenizer_config.json names a BOS (as for
    // Qwen2): add_bos adds nothing.
    QCOMPARE(t.bos_id(), -1);
    QCOMPARE(t.eos_id(), -1);
    // "the hello <tool> world": "<tool>" (normalized=false) matches in the raw text; lstrip and
    // rstrip take the spaces around it: "the hello" | " <tool> "=273 | "world".
    // ByteLevel's add_prefix_space makes the parts " the hello" and " world"; the GPT-2 regex cuts
    // " the", " hello": Ġ t h e: rank 0 Ġt=256, rank 1 he=257; " hello" -> Ġhello=262 as above;
    // " world" without ignore_merges: Ġ w o r l d = 32 119 111 114 108 100 (no merges apply).
    const Ids ids{256, 257, 262, 273, 32, 119, 111, 114, 108, 100};
    COMPARE_IDS(t.encode("the hello <tool> world", true, false), ids);
    COMPARE_IDS(t.encode("the hello <tool> world", false, false), ids);
    // <tool> is not special: it is decoded (its characters are plain ASCII stand-ins).
    QCOMPARE(t.decode(ids), std::string(" the hello<tool> world"));
  }

  // A byte-level tokenizer.json (trained here on WikiText-2, GPT-2 and LLaMA-3 styles) written as
  // llama.cpp's "gpt2" GGUF vocabulary and read back tokenizes and decodes as the file it came
  // from. test_llama_cpp checks llama.cpp's own ids for the same files.
  void byteLevelGgufVocabularyRoundTrips() {
    TESSERA_REQUIRE_DATA(wiki, "text/wikitext-2-raw/wiki.test.raw");
    TESSERA_REQUIRE_DATA(sample, "text/tinystories/sample.txt");
    const auto training = tessera_test::utf8_slice(text::read_text_file(wiki), 0, 200000);
    const std::vector<std::string> texts = {text::read_text_file(sample), tessera_test::regex_exercise_text(),
                                            tessera_test::utf8_slice(text::read_text_file(wiki), 200000, 20000)};
    for (const auto style : {tessera_test::ByteLevelStyle::Gpt2, tessera_test::ByteLevelStyle::Llama3}) {
      const bool gpt2 = style == tessera_test::ByteLevelStyle::Gpt2;
      const auto dir = tessera_test::fresh_temp_dir(gpt2 ? "gguf-vocab-gpt2" : "gguf-vocab-llama3");
      const auto bpe = tessera_test::train_byte_level_bpe(training, 2048, style);
      const auto path = write_json(dir, "tokenizer.json", bpe.tokenizer);
      write_json(dir, "tokenizer_config.json", bpe.config);
      const text::HfTokenizer hf(path);
      QCOMPARE(hf.vocab_size(), std::int64_t(2048));
      // Five padding rows, as for a model with more embeddings than tokens.
      const auto v = text::gguf_vocabulary(path, 2053);
      QCOMPARE(v.model, std::string("gpt2"));
      QCOMPARE(v.pre, std::string(gpt2 ? "gpt-2" : "llama-bpe"));
      QCOMPARE(v.tokens.size(), std::size_t(2053));
      QCOMPARE(v.merges.size(), bpe.tokenizer["model"]["merges"].size());
      QCOMPARE(v.merges.size(), std::size_t(2048 - 256 - 2));
      QCOMPARE(v.tokens[32], std::string("\xC4\xA0"));  // the space byte, U+0120 in GPT-2's alphabet
      QCOMPARE(v.types[32], 1);
      QCOMPARE(v.types[static_cast<std::size_t>(bpe.bos)], 3);
      QCOMPARE(v.types[static_cast<std::size_t>(bpe.eos)], 3);
      QCOMPARE(v.types[2050], 5);
      QCOMPARE(v.bos, bpe.bos);
      QCOMPARE(v.eos, bpe.eos);
      QVERIFY(v.add_bos && !v.add_eos);
      formats::GgufWriter g;
      text::add_gguf_vocabulary(g, v);
      const auto gguf = dir + "/vocabulary.gguf";
      {
        std::ofstream out(gguf, std::ios::binary);
        g.write(out);
      }
      const auto back = text::load_tokenizer(gguf);
      QCOMPARE(back->bos_id(), bpe.bos);
      QCOMPARE(back->eos_id(), bpe.eos);
      for (const auto& t : texts) {
        const auto ids = hf.encode(t, true, false);
        QVERIFY2(ids.size() > 100 && ids.size() < t.size(),
                 ("the trained merges should compress the text: " + std::to_string(ids.size()) + " tokens for " +
                  std::to_string(t.size()) + " bytes")
                     .c_str());
        COMPARE_IDS(back->encode(t, true, false), ids);
        QCOMPARE(back->decode(ids), hf.decode(ids));
        QCOMPARE(back->decode(ids), t);
      }
    }
  }

  // What llama.cpp's BPE vocabularies cannot reproduce is refused by name.
  void byteLevelGgufVocabularyRefusals() {
    TESSERA_REQUIRE_DATA(wiki, "text/wikitext-2-raw/wiki.test.raw");
    const auto bpe = tessera_test::train_byte_level_bpe(tessera_test::utf8_slice(text::read_text_file(wiki), 0, 20000),
                                                        400, tessera_test::ByteLevelStyle::Llama3);
    const auto dir = tessera_test::fresh_temp_dir("gguf-vocab-refusals");
    auto refusal = [&](const std::string& name, const json& tokenizer) {
      const auto path = write_json(dir + "/" + name, "tokenizer.json", tokenizer);
      write_json(dir + "/" + name, "tokenizer_config.json", bpe.config);
      try {
        text::gguf_vocabulary(path, 400);
      } catch (const Error& e) {
        return std::string(e.what());
      }
      return std::string("(accepted)");
    };
    QCOMPARE(refusal("good", bpe.tokenizer), std::string("(accepted)"));
    // Qwen2's regex (single digits): llama.cpp has a "qwen2" pre-tokenizer, but not one Tessera
    // writes; the message names the pattern.
    const std::string qwen2 =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    auto t = bpe.tokenizer;
    t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = qwen2;
    auto why = refusal("qwen2", t);
    QVERIFY2(why.find("llama.cpp has no pre-tokenizer for the split regex \"" + qwen2 + "\"") != std::string::npos,
             why.c_str());
    t = bpe.tokenizer;
    t["model"]["ignore_merges"] = false;
    why = refusal("merges", t);
    QVERIFY2(
        why.find("llama-bpe pre-tokenizer takes a word that is a token whole (ignore_merges)") != std::string::npos,
        why.c_str());
    t = bpe.tokenizer;
    t["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true;
    why = refusal("prefix", t);
    QVERIFY2(why.find("adds a prefix space") != std::string::npos, why.c_str());
    t = bpe.tokenizer;
    t["normalizer"] = {{"type", "NFC"}};
    why = refusal("nfc", t);
    QVERIFY2(why.find("normalizer {\"type\":\"NFC\"} is not applied") != std::string::npos, why.c_str());
    t = bpe.tokenizer;
    t["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true;  // GPT-2's regex after LLaMA-3's
    why = refusal("two-regexes", t);
    QVERIFY2(why.find("its ByteLevel splits with GPT-2's regex after the Split") != std::string::npos, why.c_str());
  }

  void badTokenizerFilesGiveClearErrors() {
    const auto dir = tessera_test::fresh_temp_dir("hf-bad");
    auto load = [&](const std::string& name, const json& j) {
      return text::load_tokenizer(write_json(dir + "/" + name, "tokenizer.json", j));
    };
    json good = sentencepiece_style_tokenizer(false);
    {
      json j = good;
      j.erase("model");
      TESSERA_VERIFY_THROWS_WITH(load("no-model", j), "no \"model\" section");
    }
    {
      json j = good;
      j["model"]["type"] = "WordPiece";
      TESSERA_VERIFY_THROWS_WITH(load("wordpiece", j), "model type \"WordPiece\" is not supported");
    }
    {
      json j = good;
      j["model"]["merges"].push_back("a c");
      TESSERA_VERIFY_THROWS_WITH(load("bad-merge", j), "names \"c\", which is not in the vocabulary");
    }
    {
      json j = good;
      j["model"]["merges"].push_back("b a");  // "ba" is not a token
      TESSERA_VERIFY_THROWS_WITH(load("bad-merge-result", j), "makes \"ba\", which is not in the vocabulary");
    }
    {
      json j = good;
      j["model"]["unk_token"] = "<oov>";
      TESSERA_VERIFY_THROWS_WITH(load("bad-unk", j), "unknown token \"<oov>\" is not in the vocabulary");
    }
    {
      fs::create_directories(dir + "/invalid");
      std::ofstream(dir + "/invalid/tokenizer.json") << "{\"model\": {\"type\": \"BPE\", ";
      TESSERA_VERIFY_THROWS_WITH(text::load_tokenizer(dir + "/invalid/tokenizer.json"), "invalid JSON");
    }
    // Components Tessera does not implement are refused by name.
    {
      json j = good;
      j["normalizer"] = {{"type", "NFKC"}};
      TESSERA_VERIFY_THROWS_WITH(load("nfkc", j), "normalizer \"NFKC\" is not supported");
    }
    {
      json j = good;
      j["pre_tokenizer"] = {{"type", "Whitespace"}};
      TESSERA_VERIFY_THROWS_WITH(load("whitespace", j), "pre_tokenizer \"Whitespace\" is not supported");
    }
    {
      json j = good;
      j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
      TESSERA_VERIFY_THROWS_WITH(load("wp-decoder", j), "decoder \"WordPiece\" is not supported");
    }
    {
      json j = good;
      j["post_processor"] = {{"type", "BertProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 1}}};
      TESSERA_VERIFY_THROWS_WITH(load("bert-post", j), "post_processor \"BertProcessing\" is not supported");
    }
    {
      json j = good;
      j["pre_tokenizer"] = {
          {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}};
      TESSERA_VERIFY_THROWS_WITH(load("bad-regex", j), "cannot compile the regular expression");
    }
    {
      write_json(dir + "/bad-config", "tokenizer_config.json", {{"bos_token", "<bos>"}});
      TESSERA_VERIFY_THROWS_WITH(load("bad-config", good), "bos_token \"<bos>\" is not a token");
    }
    TESSERA_VERIFY_THROWS_WITH(text::load_tokenizer(write_json(dir, "tokenizer_config.json", json::object())),
                               "pass the tokenizer.json beside it");
  }

  void discoveryPrefersTokenizerJson() {
    TESSERA_REQUIRE_DATA(model, kTinyStories);
    QCOMPARE(fs::path(text::find_tokenizer_for_model(model)).filename().string(), std::string("tokenizer.json"));
    const auto tok = text::load_tokenizer(model);  // a folder: the tokenizer found in it
    QCOMPARE(tok->kind(), std::string("tokenizer.json (BPE, sentencepiece-style)"));
    QCOMPARE(api::describe_model(model).tokenizer_path, model + "/tokenizer.json");
    // tokenizer.json, else tokenizer.model, else tokenizer.bin.
    const auto dir = tessera_test::fresh_temp_dir("hf-discovery");
    std::ofstream(dir + "/tokenizer.bin") << "x";
    QCOMPARE(fs::path(text::find_tokenizer_for_model(dir)).filename().string(), std::string("tokenizer.bin"));
    std::ofstream(dir + "/tokenizer.model") << "x";
    QCOMPARE(fs::path(text::find_tokenizer_for_model(dir)).filename().string(), std::string("tokenizer.model"));
    std::ofstream(dir + "/tokenizer.json") << "{}";
    QCOMPARE(fs::path(text::find_tokenizer_for_model(dir)).filename().string(), std::string("tokenizer.json"));
    const auto empty = tessera_test::fresh_temp_dir("hf-discovery-none");
    TESSERA_VERIFY_THROWS_WITH(text::load_tokenizer(empty), "no tokenizer.json, tokenizer.model or tokenizer.bin");
  }

  void tinyStoriesGeneratesAStory() {
    TESSERA_REQUIRE_DATA(model, kTinyStories);
    api::GenerateRequest r;
    r.model_path = model;  // the prompt is empty: generation starts from <|start_story|> alone
    r.max_tokens = 60;
    const std::string story = api::generate(r);
    std::printf("story: %s\n", story.c_str());
    QVERIFY2(story.rfind("Once upon a time", 0) == 0, ("not a story: " + story).c_str());
    QVERIFY2(story.find(" the ") != std::string::npos && story.find(" was ") != std::string::npos,
             ("not English: " + story).c_str());
  }

  void tinyStoriesPerplexityOnCpuAndCuda() {
    TESSERA_REQUIRE_DATA(model, kTinyStories);
    TESSERA_REQUIRE_DATA(valid, kValid);
    api::EvalRequest r;
    r.model_path = model;
    r.text_path = valid;
    const auto cpu = api::evaluate_perplexity(r);
    std::printf("TinyStories-656K valid.txt: %lld tokens, %lld windows of %lld, ppl cpu %.6f\n",
                static_cast<long long>(cpu.text_tokens), static_cast<long long>(cpu.windows),
                static_cast<long long>(cpu.seq_len), cpu.perplexity);
    QCOMPARE(cpu.seq_len, std::int64_t(512));  // the model's context
    QCOMPARE(cpu.windows, cpu.text_tokens / 512);
    QCOMPARE(cpu.tokenizer_path, model + "/tokenizer.json");
    QVERIFY2(cpu.perplexity > 5 && cpu.perplexity < 60, std::to_string(cpu.perplexity).c_str());
    if (!tessera_test::cuda_wanted()) QSKIP("CUDA not available on this machine (CPU perplexity checked)");
    QVERIFY2(torch::cuda::is_available(), "TESSERA_TEST_DEVICE=cuda but libtorch sees no CUDA device");
    r.device = "cuda";
    const auto gpu = api::evaluate_perplexity(r);
    std::printf("TinyStories-656K valid.txt: ppl cuda %.6f\n", gpu.perplexity);
    QCOMPARE(gpu.text_tokens, cpu.text_tokens);
    TESSERA_COMPARE_RELATIVE(gpu.perplexity, cpu.perplexity, 1e-4);
  }
};

TESSERA_TEST_MAIN(TestHfTokenizer, tinyStoriesVocabularyAndSpecialIds, tinyStoriesGoldenIds, tinyStoriesSpecialTokens,
                  tinyStoriesDecodeRoundTrips, tinyStoriesHeapMergeEqualsPlainLoop,
                  tinyStoriesValidTextRoundTripsExceptUnknownCharacters, llama2AsTokenizerJsonMatchesSentencePiece,
                  sentencePieceStyleByteFallbackGolden, metaspacePreTokenizerGolden, byteLevelLlama3StyleGolden,
                  byteLevelGpt2StyleAddsNoBos, byteLevelGgufVocabularyRoundTrips, byteLevelGgufVocabularyRefusals,
                  badTokenizerFilesGiveClearErrors, discoveryPrefersTokenizerJson, tinyStoriesGeneratesAStory,
                  tinyStoriesPerplexityOnCpuAndCuda)
#ifdef TESSERA_TEST_WITH_QT
#include "test_hf_tokenizer.moc"
#endif
