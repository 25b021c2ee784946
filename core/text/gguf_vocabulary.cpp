#include "text/gguf_vocabulary.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "text/byte_level.h"
#include "text/hf_tokenizer.h"
#include "text/llama2c_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/tokenizer_loader.h"
#include "util/error.h"

using json = nlohmann::json;

namespace tessera::text {
namespace {

// llama_token_type (llama.h)
constexpr std::int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6;

bool is_byte_piece(const std::string& p) { return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>'; }

// llama.cpp's pre-tokenizers for byte-level BPE that Tessera writes: the name llama.cpp reads from
// tokenizer.ggml.pre (llama-vocab.cpp), the regex it splits text by there, spelled as Hugging Face
// tokenizer.json files spell it (llama.cpp's own spelling of LLaMA-3's differs: (?i:'s|...) is
// written '[sS]|...), whether llama.cpp takes a word that is itself a token whole (ignore_merges,
// which it sets for llama-bpe) and whether it adds a BOS when the file does not say.
struct BpePreTokenizer {
  const char* name;
  const char* pattern;
  bool ignore_merges, add_bos;
};

const BpePreTokenizer kBpePreTokenizers[] = {
    {"gpt-2", text::kGpt2SplitPattern, false, false},
    {"llama-bpe",
     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     true, true},
};

std::string pre_tokenizer_names() {
  std::string s;
  for (const auto& p : kBpePreTokenizers) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(path + ": invalid JSON");
  return j;
}

const json& field(const json& obj, const char* key) {
  static const json null;
  const auto it = obj.is_object() ? obj.find(key) : obj.end();
  return it == obj.end() ? null : *it;
}

bool flag(const json& obj, const char* key, bool fallback) {
  const auto& v = field(obj, key);
  return v.is_boolean() ? v.get<bool>() : fallback;
}

// The regex a byte-level pre-tokenizer splits text by: GPT-2's for ByteLevel with use_regex, the
// Split's for Split(Regex, Isolated) + ByteLevel without. Throws for any other arrangement.
std::string split_pattern(const json& pre, const std::string& file) {
  const auto refuse = [&](const std::string& why) {
    return Error(file +
                 ": GGUF export writes byte-level pre-tokenizers that are ByteLevel (GPT-2's regex) or Split(Regex) "
                 "followed by ByteLevel, as llama.cpp splits text; " +
                 why);
  };
  auto byte_level_step = [&](const json& step, bool regex_expected) {
    if (flag(step, "add_prefix_space", true))
      throw refuse("its ByteLevel adds a prefix space, which llama.cpp's BPE vocabularies never do");
    if (flag(step, "use_regex", true) != regex_expected)
      throw refuse(regex_expected ? "its ByteLevel has use_regex false and no Split before it"
                                  : "its ByteLevel splits with GPT-2's regex after the Split");
  };
  const auto& type = field(pre, "type");
  if (type == "ByteLevel") {
    byte_level_step(pre, true);
    return text::kGpt2SplitPattern;
  }
  const auto& steps = field(pre, "pretokenizers");
  if (type != "Sequence" || !steps.is_array() || steps.size() != 2 || field(steps[0], "type") != "Split" ||
      field(steps[1], "type") != "ByteLevel")
    throw refuse("this one is " + pre.dump());
  const auto& split = steps[0];
  const auto& regex = field(field(split, "pattern"), "Regex");
  if (!regex.is_string()) throw refuse("its Split's pattern is not a regex: " + split.dump());
  if (field(split, "behavior") != "Isolated" || flag(split, "invert", false))
    throw refuse("its Split is not Isolated without invert: " + split.dump());
  byte_level_step(steps[1], false);
  return regex.get<std::string>();
}

// A byte-level BPE tokenizer.json as llama.cpp's "gpt2" vocabulary (convert_hf_to_gguf's
// _set_vocab_gpt2): its token strings as in the vocabulary, added tokens as control (special) or
// user-defined tokens, the merges in rank order and the pre-tokenizer llama.cpp names for its regex.
// Everything llama.cpp's BPE tokenizer would do differently from `tokenizers` is refused.
GgufVocabulary byte_level_vocabulary(const text::HfTokenizer& hf, const std::string& file) {
  const auto root = read_json_file(file);
  if (!field(root, "normalizer").is_null())
    throw Error(file + ": its normalizer " + field(root, "normalizer").dump() +
                " is not applied by llama.cpp's BPE vocabularies; GGUF export refuses it");
  const auto& decoder = field(root, "decoder");
  if (field(decoder, "type") != "ByteLevel")
    throw Error(file + ": GGUF export needs the ByteLevel decoder of byte-level BPE, not " + decoder.dump());
  const auto pattern = split_pattern(field(root, "pre_tokenizer"), file);
  const BpePreTokenizer* pre = nullptr;
  for (const auto& p : kBpePreTokenizers)
    if (pattern == p.pattern) pre = &p;
  if (!pre)
    throw Error(file + ": llama.cpp has no pre-tokenizer for the split regex \"" + pattern +
                "\"; GGUF export writes those of " + pre_tokenizer_names() +
                " (ByteLevel's GPT-2 regex and LLaMA-3's Split regex)");
  const auto& model = field(root, "model");
  if (flag(model, "byte_fallback", false))
    throw Error(file + ": byte-level BPE with byte_fallback is not what llama.cpp's BPE vocabulary does");
  if (flag(model, "ignore_merges", false) != pre->ignore_merges)
    throw Error(file + ": llama.cpp's " + pre->name + " pre-tokenizer " +
                (pre->ignore_merges ? "takes a word that is a token whole (ignore_merges), which this tokenizer.json "
                                      "does not"
                                    : "merges every word, but this tokenizer.json sets ignore_merges") +
                ": the ids would differ");

  GgufVocabulary v;
  v.model = "gpt2";
  v.pre = pre->name;
  for (int b = 0; b < 256; ++b) {
    if (hf.token_id(text::byte_level::char_for_byte(static_cast<unsigned char>(b))) < 0)
      throw Error(file + ": the vocabulary lacks the token of byte " + std::to_string(b) +
                  ", which llama.cpp's byte-level BPE falls back to");
  }
  std::set<std::int32_t> user_defined;
  for (const auto& a : field(root, "added_tokens")) {
    if (flag(a, "special", false)) continue;
    if (flag(a, "lstrip", false) || flag(a, "rstrip", false) || flag(a, "single_word", false))
      throw Error(file + ": the added token " + a.dump() +
                  " strips spaces or matches single words, which llama.cpp does not do for user-defined tokens");
    user_defined.insert(field(a, "id").get<std::int32_t>());
  }
  for (std::int32_t i = 0; i < static_cast<std::int32_t>(hf.vocab_size()); ++i) {
    const auto t = hf.token(i);
    v.tokens.push_back(t.empty() ? "[PAD" + std::to_string(i) + "]" : t);
    v.types.push_back(t.empty()               ? kUnused
                      : hf.is_special(i)      ? kControl
                      : user_defined.count(i) ? kUserDefined
                                              : kNormal);
  }
  for (const auto& m : field(model, "merges")) {
    const auto merge = m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>();
    // llama.cpp cuts "a b" at its first space after the first byte.
    const auto space = merge.find(' ', 1);
    if (space == std::string::npos || merge.find(' ', space + 1) != std::string::npos)
      throw Error(file + ": the merge \"" + merge + "\" has a token with a space, which GGUF's \"a b\" cannot hold");
    v.merges.push_back(merge);
  }
  // What encode adds around the text: llama.cpp adds the BOS / EOS token or nothing.
  v.bos = hf.bos_id();
  v.eos = hf.eos_id();
  const auto prefix = hf.encode("", true, false), suffix = hf.encode("", false, true);
  if (!(prefix.empty() || (prefix.size() == 1 && prefix[0] == v.bos)) ||
      !(suffix.empty() || (suffix.size() == 1 && suffix[0] == v.eos)))
    throw Error(file + ": it adds other tokens around the text than one BOS and one EOS, which llama.cpp cannot");
  v.add_bos = !prefix.empty();
  v.add_eos = !suffix.empty();
  const auto& unk = field(model, "unk_token");
  v.unk = unk.is_string() ? hf.token_id(unk.get<std::string>()) : -1;
  const auto config = std::filesystem::path(file).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config)) {
    const auto& pad = field(read_json_file(config.string()), "pad_token");
    const auto& content = pad.is_object() ? field(pad, "content") : pad;
    if (content.is_string()) v.pad = hf.token_id(content.get<std::string>());
  }
  return v;
}

}  // namespace

GgufVocabulary gguf_vocabulary(const std::string& tokenizer_path, std::int64_t model_vocab) {
  if (tokenizer_path.empty()) throw Error("the run records no tokenizer, which GGUF embeds");
  const auto tokenizer = text::load_tokenizer(tokenizer_path);
  GgufVocabulary v;
  v.bos = tokenizer->bos_id();
  v.eos = tokenizer->eos_id();
  static const std::string space = "\xe2\x96\x81";
  if (const auto* l = dynamic_cast<const text::Llama2cTokenizer*>(tokenizer.get())) {
    for (std::int32_t i = 0; i < static_cast<std::int32_t>(l->vocab_size()); ++i) {
      std::string p = l->piece(i);
      std::int32_t type = kNormal;
      if (i == 0) {
        type = kUnknown, p = "<unk>";
      } else if (i == v.bos || i == v.eos) {
        type = kControl, p = i == v.bos ? "<s>" : "</s>";  // llama2.c spells them "\n<s>\n", "\n</s>\n"
      } else if (is_byte_piece(p)) {
        type = kByte;
      } else {
        for (std::size_t at = p.find(' '); at != std::string::npos; at = p.find(' ', at + space.size()))
          p.replace(at, 1, space);
      }
      v.tokens.push_back(p);
      v.scores.push_back(l->score(i));
      v.types.push_back(type);
    }
  } else if (const auto* sp = dynamic_cast<const text::SentencePieceTokenizer*>(tokenizer.get())) {
    for (std::int32_t i = 0; i < static_cast<std::int32_t>(sp->vocab_size()); ++i) {
      const auto p = sp->piece(i);
      v.tokens.push_back(p);
      v.scores.push_back(sp->score(i));
      v.types.push_back(sp->is_byte(i)               ? kByte
                        : (i == v.bos || i == v.eos) ? kControl
                        : p == "<unk>"               ? kUnknown
                                                     : kNormal);
    }
  } else if (const auto* hf = dynamic_cast<const text::HfTokenizer*>(tokenizer.get()); hf && hf->byte_level()) {
    v = byte_level_vocabulary(*hf, hf->path());
  } else if (hf) {
    // A SentencePiece-style BPE tokenizer.json as llama.cpp's "llama" (SentencePiece) model, which
    // merges the adjacent pair whose joined token has the highest score: score = -(rank of the
    // first merge forming the token) makes that the lowest-ranked merge, as BPE picks it.
    // test_llama_cpp checks that llama.cpp then tokenizes as Tessera does.
    for (std::int32_t i = 0; i < static_cast<std::int32_t>(hf->vocab_size()); ++i) {
      const auto p = hf->token(i);
      const auto rank = hf->merge_rank(p);
      v.tokens.push_back(p.empty() ? "[UNUSED" + std::to_string(i) + "]" : p);
      v.scores.push_back(rank >= 0 ? -static_cast<float>(rank) : 0.f);
      v.types.push_back(p.empty()                                       ? kUnused
                        : p == "<unk>"                                  ? kUnknown
                        : hf->is_special(i) || i == v.bos || i == v.eos ? kControl
                        : is_byte_piece(p)                              ? kByte
                                                                        : kNormal);
    }
  } else {
    throw Error("GGUF export needs a SentencePiece, llama2.c or BPE tokenizer.json tokenizer; " + tokenizer_path +
                " is a " + tokenizer->kind() + " one");
  }
  if (static_cast<std::int64_t>(v.tokens.size()) > model_vocab)
    throw Error("tokenizer " + tokenizer_path + " has more tokens than the model has embeddings");
  while (static_cast<std::int64_t>(v.tokens.size()) < model_vocab) {  // as convert_hf_to_gguf pads
    v.tokens.push_back("[PAD" + std::to_string(v.tokens.size()) + "]");
    if (v.model == "llama") v.scores.push_back(0.f);
    v.types.push_back(kUnused);
  }
  return v;
}

void add_gguf_vocabulary(formats::GgufWriter& g, const GgufVocabulary& v) {
  g.add_string("tokenizer.ggml.model", v.model);
  if (!v.pre.empty()) g.add_string("tokenizer.ggml.pre", v.pre);
  g.add_strings("tokenizer.ggml.tokens", v.tokens);
  if (v.model == "llama") g.add_f32s("tokenizer.ggml.scores", v.scores);
  g.add_i32s("tokenizer.ggml.token_type", v.types);
  if (v.model == "gpt2") g.add_strings("tokenizer.ggml.merges", v.merges);
  // llama.cpp falls back to its own defaults for ids that are not written (11 for gpt2's BOS/EOS).
  if (v.bos >= 0) g.add_u32("tokenizer.ggml.bos_token_id", static_cast<std::uint32_t>(v.bos));
  if (v.eos >= 0) g.add_u32("tokenizer.ggml.eos_token_id", static_cast<std::uint32_t>(v.eos));
  if (v.unk >= 0) g.add_u32("tokenizer.ggml.unknown_token_id", static_cast<std::uint32_t>(v.unk));
  if (v.pad >= 0) g.add_u32("tokenizer.ggml.padding_token_id", static_cast<std::uint32_t>(v.pad));
  g.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);  // the evaluation protocol's one BOS
  g.add_bool("tokenizer.ggml.add_eos_token", v.add_eos);
}

std::unique_ptr<text::Tokenizer> load_gguf_bpe_tokenizer(const formats::GgufFile& f) {
  const auto& path = f.path();
  const auto& pre_name = f.value("tokenizer.ggml.pre");
  const BpePreTokenizer* pre = nullptr;
  for (const auto& p : kBpePreTokenizers)
    if (pre_name == p.name) pre = &p;
  if (!pre)
    throw Error(path + ": tokenizer.ggml.pre is " + pre_name.dump() + "; Tessera reads the byte-level pre-tokenizers " +
                pre_tokenizer_names());
  const auto& tokens = f.value("tokenizer.ggml.tokens");
  const auto& types = f.value("tokenizer.ggml.token_type");
  const auto& merges = f.value("tokenizer.ggml.merges");
  if (!tokens.is_array() || !types.is_array() || !merges.is_array() || types.size() != tokens.size())
    throw Error(path + ": tokenizer.ggml.tokens and .token_type must be arrays of one length and .merges an array");
  // The tokenizer.json this vocabulary was written from (as far as it matters for ids and text):
  // normal tokens in the BPE vocabulary, control and user-defined tokens as added tokens, padding
  // left out.
  json vocab = json::object(), added = json::array(), merge_pairs = json::array();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (!tokens[i].is_string() || !types[i].is_number_integer())
      throw Error(path + ": vocabulary entry " + std::to_string(i) + " is not (string, integer)");
    const auto type = types[i].get<std::int32_t>();
    if (type == kControl || type == kUserDefined)
      added.push_back({{"id", i}, {"content", tokens[i]}, {"special", type == kControl}, {"normalized", false}});
    else if (type != kUnused)
      vocab[tokens[i].get<std::string>()] = i;
  }
  for (const auto& m : merges) {
    const auto s = m.is_string() ? m.get<std::string>() : std::string();
    const auto space = s.find(' ', 1);
    if (space == std::string::npos) throw Error(path + ": merge " + m.dump() + " is not \"a b\"");
    merge_pairs.push_back({s.substr(0, space), s.substr(space + 1)});
  }
  const json tokenizer = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_pairs}, {"ignore_merges", pre->ignore_merges}}},
      {"added_tokens", added},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", pre->pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}}};
  json config = json::object();
  auto special = [&](const char* key, const char* name) {
    if (!f.metadata().contains(key)) return;
    const auto& id = f.value(key);
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::size_t>() >= tokens.size())
      throw Error(path + ": " + key + " is not the id of a token");
    config[name] = tokens[id.get<std::size_t>()];
  };
  special("tokenizer.ggml.bos_token_id", "bos_token");
  special("tokenizer.ggml.eos_token_id", "eos_token");
  for (const char* key : {"add_bos_token", "add_eos_token"}) {
    const auto gguf_key = std::string("tokenizer.ggml.") + key;
    const bool fallback = std::string(key) == "add_bos_token" && pre->add_bos;  // llama.cpp's when absent
    config[key] =
        f.metadata().contains(gguf_key) && f.value(gguf_key).is_boolean() ? f.value(gguf_key).get<bool>() : fallback;
  }
  return std::make_unique<text::HfTokenizer>(path, tokenizer.dump(), config.dump());
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  const formats::GgufFile f(path);
  std::string model;
  if (f.metadata().contains("tokenizer.ggml.model")) {
    const auto& v = f.value("tokenizer.ggml.model");
    if (!v.is_string()) throw Error(path + ": tokenizer.ggml.model is " + v.dump() + ", expected a string");
    model = v.get<std::string>();
  }
  if (model == "gpt2") return load_gguf_bpe_tokenizer(f);
  if (model != "llama")
    throw Error(path + ": tokenizer.ggml.model is \"" + model +
                "\"; only SentencePiece-style (llama) and byte-level BPE (gpt2) vocabularies are read");
  const auto& tokens = f.value("tokenizer.ggml.tokens");
  const auto& scores = f.value("tokenizer.ggml.scores");
  const auto& types = f.value("tokenizer.ggml.token_type");
  if (!tokens.is_array() || !scores.is_array() || !types.is_array() || scores.size() != tokens.size() ||
      types.size() != tokens.size())
    throw Error(path + ": tokenizer.ggml.tokens, .scores and .token_type must be arrays of one length (" +
                std::to_string(tokens.size()) + ", " + std::to_string(scores.size()) + ", " +
                std::to_string(types.size()) + ")");
  std::vector<std::string> pieces;
  std::vector<float> score;
  static const std::string space = "\xe2\x96\x81";  // U+2581, SentencePiece's space
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (!tokens[i].is_string() || !scores[i].is_number() || !types[i].is_number_integer())
      throw Error(path + ": vocabulary entry " + std::to_string(i) + " is not (string, number, integer)");
    auto piece = tokens[i].get<std::string>();
    if (types[i].get<int>() == 1) {  // normal tokens: llama2.c spells the space as ' '
      for (std::size_t at = piece.find(space); at != std::string::npos; at = piece.find(space, at + 1))
        piece.replace(at, space.size(), " ");
    }
    pieces.push_back(piece);
    score.push_back(scores[i].get<float>());
  }
  return std::make_unique<Llama2cTokenizer>(path, std::move(pieces), std::move(score));
}

}  // namespace tessera::text
