#include "text/hf_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "text/bpe_model.h"
#include "text/byte_level.h"
#include "text/byte_piece.h"
#include "text/unicode_regex.h"
#include "util/error.h"
#include "util/log.h"
#include "util/utf8.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace tessera::text {
namespace {

// ---- JSON access with errors that name the file and the field ------------------------------------

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string type_of(const json& obj, const std::string& where, const std::string& file) {
  const json* t = member(obj, "type");
  if (t == nullptr || !t->is_string()) throw Error(file + ": " + where + " has no \"type\"");
  return t->get<std::string>();
}

std::string string_field(const json& obj, const char* key, const std::string& where, const std::string& file) {
  const json* v = member(obj, key);
  if (v == nullptr || !v->is_string()) throw Error(file + ": " + where + ": \"" + key + "\" must be a string");
  return v->get<std::string>();
}

bool bool_field(const json& obj, const char* key, bool fallback, const std::string& where, const std::string& file) {
  const json* v = member(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) throw Error(file + ": " + where + ": \"" + key + "\" must be true or false");
  return v->get<bool>();
}

std::int64_t int_field(const json& obj, const char* key, std::int64_t fallback, const std::string& where,
                       const std::string& file) {
  const json* v = member(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_number_integer()) throw Error(file + ": " + where + ": \"" + key + "\" must be an integer");
  return v->get<std::int64_t>();
}

// A Replace/Split pattern: {"String": "..."} or {"Regex": "..."}.
struct Pattern {
  std::string literal;
  std::shared_ptr<UnicodeRegex> regex;
};

Pattern read_pattern(const json& obj, const std::string& where, const std::string& file) {
  const json* p = member(obj, "pattern");
  if (p == nullptr || !p->is_object()) throw Error(file + ": " + where + " has no \"pattern\"");
  Pattern out;
  if (const json* s = member(*p, "String"); s != nullptr && s->is_string()) {
    out.literal = s->get<std::string>();
    if (out.literal.empty()) throw Error(file + ": " + where + ": the pattern is empty");
  } else if (const json* r = member(*p, "Regex"); r != nullptr && r->is_string()) {
    out.regex = std::make_shared<UnicodeRegex>(r->get<std::string>(), file + ": " + where);
  } else {
    throw Error(file + ": " + where + ": the pattern must be {\"String\": ...} or {\"Regex\": ...}");
  }
  return out;
}

std::vector<std::pair<std::size_t, std::size_t>> find_all(const Pattern& p, std::string_view text) {
  if (p.regex) return p.regex->find_all(text);
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (std::size_t at = text.find(p.literal); at != std::string_view::npos;
       at = text.find(p.literal, at + p.literal.size()))
    out.emplace_back(at, at + p.literal.size());
  return out;
}

std::string replace_all(const Pattern& p, const std::string& content, std::string_view text) {
  std::string out;
  std::size_t last = 0;
  for (const auto& [b, e] : find_all(p, text)) {
    out.append(text.substr(last, b - last));
    out += content;
    last = e;
  }
  out.append(text.substr(last));
  return out;
}

// NFC without Unicode decomposition tables: Tessera applies it only to text that it provably leaves
// unchanged (characters with no canonical decomposition and combining class 0 that compose with
// nothing), and refuses other text rather than guess.
bool nfc_inert(char32_t c) {
  return c < 0x300 || (c >= 0x400 && c <= 0x482) || (c >= 0x48A && c <= 0x4FF) || (c >= 0x2002 && c <= 0x206F) ||
         (c >= 0x20A0 && c <= 0x20C0) || (c >= 0x2500 && c <= 0x27BF) || (c >= 0x3000 && c <= 0x3029) ||
         (c >= 0x3030 && c <= 0x303F) || (c >= 0x3041 && c <= 0x3096) || (c >= 0x30A1 && c <= 0x30FA) ||
         (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7A3) ||
         (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xFF01 && c <= 0xFFEE) || (c >= 0x1F000 && c <= 0x1FAFF);
}

void check_nfc_inert(std::string_view text, const std::string& file) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8::sequence_length(text, i);
    if (n == 0) throw Error(file + ": the text is not valid UTF-8 (byte " + std::to_string(i) + ")");
    const char32_t c = utf8::decode(text, i);
    if (!nfc_inert(c)) {
      char hex[16];
      if (std::snprintf(hex, sizeof(hex), "U+%04X", static_cast<unsigned>(c)) < 0) hex[0] = '\0';
      throw Error(file + ": the NFC normalizer is supported only for text it leaves unchanged; " + hex + " (byte " +
                  std::to_string(i) + ") may need composing, which Tessera does not implement");
    }
    i += n;
  }
}

// ---- pipeline components ----------------------------------------------------------------------

struct NormalizerStep {
  enum Kind { kPrepend, kReplace, kNfc } kind;
  std::string text;  // Prepend: the prefix; Replace: the replacement
  Pattern pattern;
};

enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum Kind { kByteLevel, kSplit, kMetaspace, kDigits } kind;
  bool add_prefix_space = false;        // ByteLevel
  std::shared_ptr<UnicodeRegex> regex;  // ByteLevel (use_regex), Digits
  Pattern pattern;                      // Split
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  std::string replacement;  // Metaspace
  enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;
  bool split = false;
};

struct DecoderStep {
  enum Kind { kReplace, kByteFallback, kFuse, kStrip, kByteLevel, kMetaspace } kind;
  Pattern pattern;
  std::string text;  // Replace: replacement; Strip: the character; Metaspace: the replacement
  std::int64_t start = 0;
  bool drop_first = false;  // Metaspace: prepend_scheme != never
};

struct Piece {
  std::string text;
  bool at_origin = false;  // starts at offset 0 of the original text (Metaspace's "first")
};

struct AddedToken {
  std::string content, pattern;  // pattern: content, normalized when `normalized`
  std::int32_t id = -1;
  bool special = false, normalized = true, lstrip = false, rstrip = false, single_word = false;
};

// Leftmost-longest matching of a set of strings, as the Aho-Corasick automaton of `tokenizers`.
class TokenMatcher {
 public:
  void add(const AddedToken* token) {
    if (token->pattern.empty()) return;
    auto& list = by_first_[static_cast<unsigned char>(token->pattern[0])];
    list.push_back(token);
    std::stable_sort(list.begin(), list.end(),
                     [](const AddedToken* a, const AddedToken* b) { return a->pattern.size() > b->pattern.size(); });
    empty_ = false;
  }
  bool empty() const { return empty_; }
  // The leftmost match at or after `from`, the longest there; {npos, nullptr} if none.
  std::pair<std::size_t, const AddedToken*> find(std::string_view text, std::size_t from) const {
    for (std::size_t i = from; i < text.size(); ++i) {
      const auto& list = by_first_[static_cast<unsigned char>(text[i])];
      for (const AddedToken* t : list)
        if (text.compare(i, t->pattern.size(), t->pattern) == 0) return {i, t};
    }
    return {std::string_view::npos, nullptr};
  }

 private:
  std::vector<const AddedToken*> by_first_[256];
  bool empty_ = true;
};

// A part of the input: text still to be tokenized, or an added token's id.
struct Segment {
  std::string text;
  std::int32_t id = -1;
  bool at_origin = false;
};

}  // namespace

struct HfTokenizer::Impl {
  std::string file;
  std::unique_ptr<BpeModel> model;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, std::int32_t> added_ids;
  std::unordered_map<std::int32_t, std::size_t> added_by_id;  // id -> index in `added`
  TokenMatcher raw_matcher, normalized_matcher;
  std::unique_ptr<UnicodeRegex> word_char;  // \w, for single_word added tokens
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  std::vector<DecoderStep> decoders;
  bool has_decoder = false;
  bool template_seen = false;
  std::vector<std::int32_t> template_prefix, template_suffix;
  std::vector<std::int32_t> prefix, suffix;  // what add_bos / add_eos add
  std::int32_t bos = -1, eos = -1;
  std::int64_t vocab_size = 0;
  bool byte_level = false;
  // The rank of the first merge whose result is the token (what SentencePiece-style scores encode).
  std::unordered_map<std::string, std::int64_t> first_merge_forming;

  std::int32_t token_to_id(const std::string& t) const {
    auto it = added_ids.find(t);
    if (it != added_ids.end()) return it->second;
    return model->token_to_id(t);
  }
  std::string id_to_token(std::int32_t id) const {
    auto it = added_by_id.find(id);
    if (it != added_by_id.end()) return added[it->second].content;
    return model->id_to_token(id);
  }
  bool is_special(std::int32_t id) const {
    auto it = added_by_id.find(id);
    return it != added_by_id.end() && added[it->second].special;
  }

  // ---- reading ----
  void read_model(const json& root);
  void read_added_tokens(const json& root);
  void read_normalizer(const json& node, const std::string& where);
  void read_pre_tokenizer(const json& node, const std::string& where);
  void read_post_processor(const json& node, const std::string& where);
  void read_decoder(const json& node, const std::string& where);
  void read_config(const std::string* config_json, const std::string& cfile);

  // ---- encoding ----
  std::string normalize(std::string s) const;
  void split_added(const TokenMatcher& matcher, const Segment& seg, std::vector<Segment>& out) const;
  std::vector<Piece> pre_tokenize(const Segment& seg) const;
};

// ---- reading -----------------------------------------------------------------------------------

void HfTokenizer::Impl::read_model(const json& root) {
  const json* m = member(root, "model");
  if (m == nullptr || !m->is_object()) throw Error(file + ": no \"model\" section: not a Hugging Face tokenizer.json");
  std::string type;
  if (const json* t = member(*m, "type"); t != nullptr) {
    if (!t->is_string()) throw Error(file + ": model \"type\" must be a string");
    type = t->get<std::string>();
  } else if (member(*m, "merges") != nullptr) {
    type = "BPE";  // files written by old `tokenizers` versions have no type
  } else {
    throw Error(file + ": the model has no \"type\"");
  }
  if (type != "BPE")
    throw Error(file + ": model type \"" + type + "\" is not supported; Tessera reads BPE tokenizers only");
  if (const json* d = member(*m, "dropout"); d != nullptr && d->is_number() && d->get<double>() > 0)
    throw Error(file + ": BPE dropout (" + d->dump() + ") is for training and is not supported");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* v = member(*m, affix); v != nullptr && !(v->is_string() && v->get<std::string>().empty()))
      throw Error(file + ": BPE " + affix + " " + v->dump() + " is not supported");
  }
  const json* vocab_json = member(*m, "vocab");
  if (vocab_json == nullptr || !vocab_json->is_object()) throw Error(file + ": the BPE model has no \"vocab\" object");
  std::unordered_map<std::string, std::int32_t> vocab;
  vocab.reserve(vocab_json->size());
  for (auto it = vocab_json->begin(); it != vocab_json->end(); ++it) {
    if (!it->is_number_integer()) throw Error(file + ": vocabulary entry \"" + it.key() + "\" has no integer id");
    const auto id = it->get<std::int64_t>();
    if (id < 0 || id > 0x7FFFFFFF)
      throw Error(file + ": vocabulary entry \"" + it.key() + "\" has the id " + std::to_string(id));
    vocab.emplace(it.key(), static_cast<std::int32_t>(id));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (const json* mj = member(*m, "merges"); mj != nullptr) {
    if (!mj->is_array()) throw Error(file + ": BPE \"merges\" must be a list");
    merges.reserve(mj->size());
    std::size_t rank = 0;
    for (const auto& entry : *mj) {
      if (entry.is_string()) {  // "a b"
        const auto s = entry.get<std::string>();
        const auto space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          throw Error(file + ": merge " + std::to_string(rank) + " \"" + s +
                      "\" is not two tokens separated by a space");
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
        merges.emplace_back(entry[0].get<std::string>(), entry[1].get<std::string>());  // ["a", "b"]
      } else {
        throw Error(file + ": merge " + std::to_string(rank) + " " + entry.dump() +
                    " is neither \"a b\" nor [\"a\", \"b\"]");
      }
      ++rank;
    }
  }
  for (std::size_t r = 0; r < merges.size(); ++r)
    first_merge_forming.emplace(merges[r].first + merges[r].second, static_cast<std::int64_t>(r));
  BpeOptions options;
  if (const json* u = member(*m, "unk_token"); u != nullptr) {
    if (!u->is_string()) throw Error(file + ": BPE \"unk_token\" must be a string");
    options.unk_token = u->get<std::string>();
  }
  options.fuse_unk = bool_field(*m, "fuse_unk", false, "model", file);
  options.byte_fallback = bool_field(*m, "byte_fallback", false, "model", file);
  options.ignore_merges = bool_field(*m, "ignore_merges", false, "model", file);
  model = std::make_unique<BpeModel>(std::move(vocab), merges, options, file);
}

void HfTokenizer::Impl::read_added_tokens(const json& root) {
  const json* list = member(root, "added_tokens");
  if (list == nullptr) return;
  if (!list->is_array()) throw Error(file + ": \"added_tokens\" must be a list");
  for (const auto& t : *list) {
    const std::string where = "added token " + t.dump();
    AddedToken a;
    a.content = string_field(t, "content", where, file);
    const auto id = int_field(t, "id", -1, where, file);
    if (id < 0 || id > 0x7FFFFFFF) throw Error(file + ": " + where + " has no valid \"id\"");
    a.id = static_cast<std::int32_t>(id);
    a.special = bool_field(t, "special", false, where, file);
    a.normalized = bool_field(t, "normalized", !a.special, where, file);
    a.lstrip = bool_field(t, "lstrip", false, where, file);
    a.rstrip = bool_field(t, "rstrip", false, where, file);
    a.single_word = bool_field(t, "single_word", false, where, file);
    if (a.content.empty()) continue;  // `tokenizers` ignores empty added tokens
    added_ids[a.content] = a.id;
    added_by_id[a.id] = added.size();
    added.push_back(std::move(a));
  }
}

void HfTokenizer::Impl::read_normalizer(const json& node, const std::string& where) {
  const std::string type = type_of(node, where, file);
  if (type == "Sequence") {
    const json* list = member(node, "normalizers");
    if (list == nullptr || !list->is_array())
      throw Error(file + ": " + where + " Sequence has no \"normalizers\" list");
    for (const auto& n : *list) read_normalizer(n, where);
  } else if (type == "Prepend") {
    normalizers.push_back({NormalizerStep::kPrepend, string_field(node, "prepend", where + " Prepend", file), {}});
  } else if (type == "Replace") {
    normalizers.push_back({NormalizerStep::kReplace, string_field(node, "content", where + " Replace", file),
                           read_pattern(node, where + " Replace", file)});
  } else if (type == "NFC") {
    normalizers.push_back({NormalizerStep::kNfc, {}, {}});
  } else {
    throw Error(file + ": " + where + " \"" + type +
                "\" is not supported (Tessera supports Sequence, Prepend, Replace and NFC)");
  }
}

void HfTokenizer::Impl::read_pre_tokenizer(const json& node, const std::string& where) {
  const std::string type = type_of(node, where, file);
  PreTokenizerStep step;
  if (type == "Sequence") {
    const json* list = member(node, "pretokenizers");
    if (list == nullptr || !list->is_array())
      throw Error(file + ": " + where + " Sequence has no \"pretokenizers\" list");
    for (const auto& p : *list) read_pre_tokenizer(p, where);
    return;
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::kByteLevel;
    step.add_prefix_space = bool_field(node, "add_prefix_space", true, where + " ByteLevel", file);
    if (bool_field(node, "use_regex", true, where + " ByteLevel", file))
      step.regex = std::make_shared<UnicodeRegex>(kGpt2SplitPattern, file + ": " + where + " ByteLevel");
    byte_level = true;
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::kSplit;
    step.pattern = read_pattern(node, where + " Split", file);
    step.invert = bool_field(node, "invert", false, where + " Split", file);
    const std::string b = string_field(node, "behavior", where + " Split", file);
    if (b == "Isolated")
      step.behavior = SplitBehavior::kIsolated;
    else if (b == "Removed")
      step.behavior = SplitBehavior::kRemoved;
    else if (b == "MergedWithPrevious")
      step.behavior = SplitBehavior::kMergedWithPrevious;
    else if (b == "MergedWithNext")
      step.behavior = SplitBehavior::kMergedWithNext;
    else if (b == "Contiguous")
      step.behavior = SplitBehavior::kContiguous;
    else
      throw Error(file + ": " + where + " Split behavior \"" + b + "\" is not supported");
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::kMetaspace;
    step.replacement = string_field(node, "replacement", where + " Metaspace", file);
    if (step.replacement.empty() || utf8::char_length(step.replacement, 0) != step.replacement.size())
      throw Error(file + ": " + where + " Metaspace replacement must be one character");
    if (const json* s = member(node, "prepend_scheme"); s != nullptr) {
      const std::string scheme = s->is_string() ? s->get<std::string>() : s->dump();
      if (scheme == "always")
        step.prepend = PreTokenizerStep::kAlways;
      else if (scheme == "first")
        step.prepend = PreTokenizerStep::kFirst;
      else if (scheme == "never")
        step.prepend = PreTokenizerStep::kNever;
      else
        throw Error(file + ": " + where + " Metaspace prepend_scheme \"" + scheme + "\" is not supported");
    } else {
      step.prepend = bool_field(node, "add_prefix_space", true, where + " Metaspace", file) ? PreTokenizerStep::kAlways
                                                                                            : PreTokenizerStep::kNever;
    }
    step.split = bool_field(node, "split", true, where + " Metaspace", file);
  } else if (type == "Digits") {
    step.kind = PreTokenizerStep::kDigits;
    const bool individual = bool_field(node, "individual_digits", false, where + " Digits", file);
    step.regex = std::make_shared<UnicodeRegex>(individual ? R"(\p{N})" : R"(\p{N}+)", file + ": " + where + " Digits");
  } else {
    throw Error(file + ": " + where + " \"" + type +
                "\" is not supported (Tessera supports Sequence, ByteLevel, Split, Metaspace and Digits)");
  }
  pre_tokenizers.push_back(std::move(step));
}

void HfTokenizer::Impl::read_post_processor(const json& node, const std::string& where) {
  const std::string type = type_of(node, where, file);
  if (type == "Sequence") {
    const json* list = member(node, "processors");
    if (list == nullptr || !list->is_array()) throw Error(file + ": " + where + " Sequence has no \"processors\" list");
    for (const auto& p : *list) read_post_processor(p, where);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets; ids are unchanged.
  } else if (type == "TemplateProcessing") {
    if (template_seen) throw Error(file + ": " + where + " has two TemplateProcessing steps");
    template_seen = true;
    const json* single = member(node, "single");
    if (single == nullptr || !single->is_array())
      throw Error(file + ": " + where + " TemplateProcessing has no \"single\" template");
    const json* specials = member(node, "special_tokens");
    bool seen_a = false;
    for (const auto& item : *single) {
      if (const json* seq = member(item, "Sequence"); seq != nullptr) {
        const std::string id = string_field(*seq, "id", where + " TemplateProcessing", file);
        if (id != "A" || seen_a)
          throw Error(file + ": " + where + " TemplateProcessing's single template must hold $A once, not " +
                      item.dump());
        seen_a = true;
      } else if (const json* sp = member(item, "SpecialToken"); sp != nullptr) {
        const std::string name = string_field(*sp, "id", where + " TemplateProcessing", file);
        const json* entry = specials ? member(*specials, name.c_str()) : nullptr;
        const json* ids = entry ? member(*entry, "ids") : nullptr;
        if (ids == nullptr || !ids->is_array())
          throw Error(file + ": " + where + " TemplateProcessing uses \"" + name +
                      "\", which its special_tokens do not define");
        for (const auto& v : *ids) {
          if (!v.is_number_integer()) throw Error(file + ": " + where + " special token \"" + name + "\" has a bad id");
          (seen_a ? template_suffix : template_prefix).push_back(v.get<std::int32_t>());
        }
      } else {
        throw Error(file + ": " + where + " TemplateProcessing item " + item.dump() + " is not understood");
      }
    }
    if (!seen_a) throw Error(file + ": " + where + " TemplateProcessing's single template has no $A");
  } else {
    throw Error(file + ": " + where + " \"" + type +
                "\" is not supported (Tessera supports TemplateProcessing, ByteLevel and Sequence)");
  }
}

void HfTokenizer::Impl::read_decoder(const json& node, const std::string& where) {
  const std::string type = type_of(node, where, file);
  DecoderStep step;
  if (type == "Sequence") {
    const json* list = member(node, "decoders");
    if (list == nullptr || !list->is_array()) throw Error(file + ": " + where + " Sequence has no \"decoders\" list");
    for (const auto& d : *list) read_decoder(d, where);
    return;
  } else if (type == "Replace") {
    step.kind = DecoderStep::kReplace;
    step.pattern = read_pattern(node, where + " Replace", file);
    step.text = string_field(node, "content", where + " Replace", file);
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::kStrip;
    step.text = string_field(node, "content", where + " Strip", file);
    step.start = int_field(node, "start", 0, where + " Strip", file);
    if (int_field(node, "stop", 0, where + " Strip", file) != 0)
      throw Error(file + ": " + where +
                  " Strip with stop > 0 (strip the end of the text) is not supported: "
                  "text is decoded token by token");
  } else if (type == "ByteLevel") {
    step.kind = DecoderStep::kByteLevel;
    byte_level = true;
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::kMetaspace;
    step.text = string_field(node, "replacement", where + " Metaspace", file);
    bool drop = bool_field(node, "add_prefix_space", true, where + " Metaspace", file);
    if (const json* s = member(node, "prepend_scheme"); s != nullptr && s->is_string())
      drop = s->get<std::string>() != "never";
    step.drop_first = drop;
  } else {
    throw Error(file + ": " + where + " \"" + type +
                "\" is not supported (Tessera supports Sequence, Replace, ByteFallback, Fuse, Strip, "
                "ByteLevel and Metaspace)");
  }
  decoders.push_back(std::move(step));
}

// tokenizer_config.json: bos_token / eos_token (a string or {"content": ...}), add_bos_token and
// add_eos_token, as transformers reads them.
void HfTokenizer::Impl::read_config(const std::string* config_json, const std::string& cfile) {
  std::optional<bool> add_bos, add_eos;
  if (config_json) {
    json cfg = json::parse(*config_json, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) throw Error(cfile + ": invalid JSON");
    auto token_of = [&](const char* key) -> std::int32_t {
      const json* v = member(cfg, key);
      if (v == nullptr) return -1;
      std::string content;
      if (v->is_string())
        content = v->get<std::string>();
      else if (v->is_object() && member(*v, "content") && (*v)["content"].is_string())
        content = (*v)["content"].get<std::string>();
      else
        throw Error(cfile + ": \"" + key + "\" must be a string or {\"content\": ...}");
      const auto id = token_to_id(content);
      if (id < 0) throw Error(cfile + ": " + key + " \"" + content + "\" is not a token of " + file);
      return id;
    };
    bos = token_of("bos_token");
    eos = token_of("eos_token");
    if (const json* v = member(cfg, "add_bos_token"); v != nullptr && v->is_boolean()) add_bos = v->get<bool>();
    if (const json* v = member(cfg, "add_eos_token"); v != nullptr && v->is_boolean()) add_eos = v->get<bool>();
  }
  if (bos < 0 && template_prefix.size() == 1) bos = template_prefix[0];
  if (eos < 0 && template_suffix.size() == 1) eos = template_suffix[0];
  if (add_bos) {
    if (*add_bos && bos < 0) throw Error(cfile + ": add_bos_token is true but no bos_token is defined");
    prefix = *add_bos ? std::vector<std::int32_t>{bos} : std::vector<std::int32_t>{};
  } else {
    prefix = template_prefix;
  }
  if (add_eos) {
    if (*add_eos && eos < 0) throw Error(cfile + ": add_eos_token is true but no eos_token is defined");
    suffix = *add_eos ? std::vector<std::int32_t>{eos} : std::vector<std::int32_t>{};
  } else {
    suffix = template_suffix;
  }
}

// ---- encoding ----------------------------------------------------------------------------------

std::string HfTokenizer::Impl::normalize(std::string s) const {
  for (const auto& n : normalizers) {
    switch (n.kind) {
      case NormalizerStep::kPrepend:
        if (!s.empty()) s = n.text + s;
        break;
      case NormalizerStep::kReplace:
        s = replace_all(n.pattern, n.text, s);
        break;
      case NormalizerStep::kNfc:
        check_nfc_inert(s, file);
        break;
    }
  }
  return s;
}

// `tokenizers`' AddedVocabulary::find_matches: split `seg` into added tokens and the text between
// them, honouring single_word, lstrip and rstrip.
void HfTokenizer::Impl::split_added(const TokenMatcher& matcher, const Segment& seg, std::vector<Segment>& out) const {
  if (seg.id >= 0 || matcher.empty()) {
    if (seg.id >= 0 || !seg.text.empty()) out.push_back(seg);
    return;
  }
  const std::string_view text = seg.text;
  auto push_text = [&](std::size_t b, std::size_t e) {
    if (e > b) out.push_back({std::string(text.substr(b, e - b)), -1, seg.at_origin && b == 0});
  };
  auto is_word_char = [&](std::size_t b, std::size_t n) { return word_char && word_char->search(text.substr(b, n)); };
  std::size_t start_offset = 0, from = 0;
  while (from < text.size()) {
    const auto [at, token] = matcher.find(text, from);
    if (token == nullptr) break;
    std::size_t start = at, stop = at + token->pattern.size();
    from = stop;
    if (token->single_word) {
      bool word_before = false, word_after = false;
      if (start > 0) {
        std::size_t b = start - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        word_before = is_word_char(b, start - b);
      }
      if (stop < text.size()) word_after = is_word_char(stop, utf8::char_length(text, stop));
      if (word_before || word_after) continue;
    }
    if (token->lstrip) {
      std::size_t b = start;
      while (b > 0) {
        std::size_t c = b - 1;
        while (c > 0 && (static_cast<unsigned char>(text[c]) & 0xC0) == 0x80) --c;
        if (utf8::sequence_length(text, c) == 0 || !utf8::is_whitespace(utf8::decode(text, c))) break;
        b = c;
      }
      start = std::max(b, start_offset);
    }
    if (token->rstrip) {
      while (stop < text.size() && utf8::sequence_length(text, stop) != 0 &&
             utf8::is_whitespace(utf8::decode(text, stop)))
        stop += utf8::char_length(text, stop);
      from = stop;
    }
    push_text(start_offset, start);
    out.push_back({std::string(), token->id, seg.at_origin && start == 0});
    start_offset = stop;
  }
  push_text(start_offset, text.size());
}

namespace {

// `tokenizers`' NormalizedString::split: `matches` cover parts of `piece`; the gaps between them
// are the other parts; `behavior` decides what becomes of the matched parts.
void split_piece(const Piece& piece, const std::vector<std::pair<std::size_t, std::size_t>>& matches,
                 SplitBehavior behavior, bool invert, std::vector<Piece>& out) {
  struct Part {
    std::size_t b, e;
    bool is_match;
  };
  std::vector<Part> parts;
  std::size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < piece.text.size()) parts.push_back({prev, piece.text.size(), invert});
  std::vector<Part> kept;  // is_match now means "remove"
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (auto p : parts) kept.push_back({p.b, p.e, false});
      break;
    case SplitBehavior::kRemoved:
      kept = parts;
      break;
    case SplitBehavior::kContiguous:
      for (auto p : parts) {
        if (p.is_match == previous_match && !kept.empty())
          kept.back().e = p.e;
        else
          kept.push_back({p.b, p.e, false});
        previous_match = p.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (auto p : parts) {
        if (p.is_match && !previous_match && !kept.empty())
          kept.back().e = p.e;
        else
          kept.push_back({p.b, p.e, false});
        previous_match = p.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous_match && !kept.empty())
          kept.back().b = it->b;
        else
          kept.push_back({it->b, it->e, false});
        previous_match = it->is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const auto& p : kept) {
    if (p.is_match || p.e <= p.b) continue;
    out.push_back({piece.text.substr(p.b, p.e - p.b), piece.at_origin && p.b == 0});
  }
}

}  // namespace

std::vector<Piece> HfTokenizer::Impl::pre_tokenize(const Segment& seg) const {
  std::vector<Piece> pieces{{seg.text, seg.at_origin}};
  for (const auto& step : pre_tokenizers) {
    std::vector<Piece> next;
    switch (step.kind) {
      case PreTokenizerStep::kSplit:
        for (const auto& p : pieces) split_piece(p, find_all(step.pattern, p.text), step.behavior, step.invert, next);
        break;
      case PreTokenizerStep::kDigits:
        for (const auto& p : pieces)
          split_piece(p, step.regex->find_all(p.text), SplitBehavior::kIsolated, false, next);
        break;
      case PreTokenizerStep::kMetaspace:
        for (auto p : pieces) {
          std::string s;
          for (char c : p.text) {
            if (c == ' ')
              s += step.replacement;
            else
              s.push_back(c);
          }
          const bool starts = s.compare(0, step.replacement.size(), step.replacement) == 0;
          if (!starts &&
              (step.prepend == PreTokenizerStep::kAlways || (step.prepend == PreTokenizerStep::kFirst && p.at_origin)))
            s = step.replacement + s;
          Piece q{std::move(s), p.at_origin};
          if (!step.split) {
            next.push_back(std::move(q));
          } else {
            Pattern rep;
            rep.literal = step.replacement;
            split_piece(q, find_all(rep, q.text), SplitBehavior::kMergedWithNext, false, next);
          }
        }
        break;
      case PreTokenizerStep::kByteLevel:
        for (auto p : pieces) {
          if (step.add_prefix_space && (p.text.empty() || p.text[0] != ' ')) p.text = " " + p.text;
          if (step.regex)
            split_piece(p, step.regex->find_all(p.text), SplitBehavior::kIsolated, false, next);
          else
            next.push_back(std::move(p));
        }
        for (auto& p : next) p.text = byte_level::encode(p.text);
        break;
    }
    pieces = std::move(next);
  }
  return pieces;
}

// ---- HfTokenizer -------------------------------------------------------------------------------

namespace {
std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

HfTokenizer::HfTokenizer(const std::string& path) : path_(path), impl_(std::make_unique<Impl>()) {
  if (!std::ifstream(path, std::ios::binary)) throw Error("cannot open tokenizer " + path);
  const auto config = fs::path(path).parent_path() / "tokenizer_config.json";
  const auto config_json = fs::exists(config) ? std::optional<std::string>(file_text(config)) : std::nullopt;
  init(file_text(path), config_json ? &*config_json : nullptr, config.string());
}

HfTokenizer::HfTokenizer(const std::string& source, const std::string& tokenizer_json, const std::string& config_json)
    : path_(source), impl_(std::make_unique<Impl>()) {
  init(tokenizer_json, config_json.empty() ? nullptr : &config_json, source + " (tokenizer_config)");
}

void HfTokenizer::init(const std::string& tokenizer_json, const std::string* config_json,
                       const std::string& config_name) {
  const std::string& path = path_;
  Impl& m = *impl_;
  m.file = path;
  json root;
  try {
    root = json::parse(tokenizer_json);
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
  if (!root.is_object()) throw Error(path + ": not a Hugging Face tokenizer.json (expected a JSON object)");
  m.read_model(root);
  m.read_added_tokens(root);
  if (const json* n = member(root, "normalizer")) m.read_normalizer(*n, "normalizer");
  if (const json* p = member(root, "pre_tokenizer")) m.read_pre_tokenizer(*p, "pre_tokenizer");
  if (const json* p = member(root, "post_processor")) m.read_post_processor(*p, "post_processor");
  if (const json* d = member(root, "decoder")) {
    m.has_decoder = true;
    m.read_decoder(*d, "decoder");
  }
  for (const char* section : {"truncation", "padding"}) {
    if (member(root, section) != nullptr)
      logger()->warn("{}: its {} settings are not applied (Tessera tokenizes whole texts)", path, section);
  }
  // Added tokens' patterns: the content, normalized for normalized tokens, as `tokenizers` builds
  // its two matchers.
  bool any_single_word = false;
  for (auto& a : m.added) {
    a.pattern = a.normalized ? m.normalize(a.content) : a.content;
    (a.normalized ? m.normalized_matcher : m.raw_matcher).add(&a);
    any_single_word = any_single_word || a.single_word;
  }
  if (any_single_word) m.word_char = std::make_unique<UnicodeRegex>(R"(\A\w\z)", path + ": single_word");
  m.vocab_size = m.model->id_limit();
  for (const auto& a : m.added) m.vocab_size = std::max<std::int64_t>(m.vocab_size, std::int64_t(a.id) + 1);
  for (auto id : m.template_prefix)
    if (id < 0 || id >= m.vocab_size)
      throw Error(path + ": the post-processor adds the id " + std::to_string(id) + ", outside the vocabulary");
  for (auto id : m.template_suffix)
    if (id < 0 || id >= m.vocab_size)
      throw Error(path + ": the post-processor adds the id " + std::to_string(id) + ", outside the vocabulary");
  m.read_config(config_json, config_name);
}

HfTokenizer::~HfTokenizer() = default;

std::vector<std::int32_t> HfTokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
  const Impl& m = *impl_;
  std::vector<std::int32_t> ids;
  if (add_bos) ids = m.prefix;
  // 1. added tokens matched on the raw text (normalized=false), 2. the rest normalized and split on
  // the normalized added tokens.
  std::vector<Segment> raw, segments;
  m.split_added(m.raw_matcher, Segment{text, -1, true}, raw);
  for (auto& seg : raw) {
    if (seg.id < 0) seg.text = m.normalize(std::move(seg.text));
    m.split_added(m.normalized_matcher, seg, segments);
  }
  for (const auto& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    if (m.pre_tokenizers.empty()) {
      m.model->tokenize(seg.text, ids);
    } else {
      for (const auto& piece : m.pre_tokenize(seg)) m.model->tokenize(piece.text, ids);
    }
  }
  if (add_eos) ids.insert(ids.end(), m.suffix.begin(), m.suffix.end());
  return ids;
}

std::string HfTokenizer::decode_token(std::int32_t previous, std::int32_t token) const {
  const Impl& m = *impl_;
  if (token < 0 || token >= m.vocab_size)
    throw Error("token id " + std::to_string(token) + " is outside the tokenizer's vocabulary (" +
                std::to_string(m.vocab_size) + ")");
  if (m.is_special(token)) return "";  // skip_special_tokens, as in generation
  std::string s = m.id_to_token(token);
  const bool first = previous < 0 || previous == m.bos;
  if (!m.has_decoder) return first ? s : " " + s;  // `tokenizers` joins tokens with spaces
  bool fused = false;
  for (const auto& d : m.decoders) {
    switch (d.kind) {
      case DecoderStep::kReplace:
        s = replace_all(d.pattern, d.text, s);
        break;
      case DecoderStep::kByteFallback: {
        if (const int byte = byte_of_piece(s); byte >= 0) s = std::string(1, static_cast<char>(byte));
        break;
      }
      case DecoderStep::kFuse:
        fused = true;
        break;
      case DecoderStep::kStrip:
        // After Fuse, Strip sees the whole text, so only the first token loses its prefix.
        if (!fused || first) {
          for (std::int64_t i = 0; i < d.start && s.compare(0, d.text.size(), d.text) == 0; ++i)
            s.erase(0, d.text.size());
        }
        break;
      case DecoderStep::kByteLevel: {
        std::string bytes;
        if (byte_level::decode(s, bytes)) s = std::move(bytes);  // else: the token's own bytes
        fused = true;
        break;
      }
      case DecoderStep::kMetaspace: {
        std::string out;
        for (std::size_t i = 0; i < s.size();) {
          if (s.compare(i, d.text.size(), d.text) == 0) {
            if (!(first && d.drop_first)) out.push_back(' ');
            i += d.text.size();
          } else {
            out.push_back(s[i++]);
          }
        }
        s = std::move(out);
        break;
      }
    }
  }
  return s;
}

std::int64_t HfTokenizer::vocab_size() const { return impl_->vocab_size; }
std::int32_t HfTokenizer::bos_id() const { return impl_->bos; }
std::int32_t HfTokenizer::eos_id() const { return impl_->eos; }
bool HfTokenizer::byte_level() const { return impl_->byte_level; }
std::string HfTokenizer::kind() const {
  return impl_->byte_level ? "tokenizer.json (BPE, byte-level)" : "tokenizer.json (BPE, sentencepiece-style)";
}
std::string HfTokenizer::token(std::int32_t id) const { return impl_->id_to_token(id); }
std::int32_t HfTokenizer::token_id(const std::string& t) const { return impl_->token_to_id(t); }
bool HfTokenizer::is_special(std::int32_t id) const { return impl_->is_special(id); }
std::int64_t HfTokenizer::merge_rank(const std::string& t) const {
  const auto it = impl_->first_merge_forming.find(t);
  return it == impl_->first_merge_forming.end() ? -1 : it->second;
}

}  // namespace tessera::text
