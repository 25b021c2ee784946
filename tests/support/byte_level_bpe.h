#pragma once
// A byte-level BPE tokenizer.json (GPT-2 / LLaMA-3 style) trained by the tests themselves, since
// the shared data holds no byte-level model: the 256 byte tokens (id = byte value, written in
// GPT-2's byte-to-unicode alphabet), then merges learned from a real text, then <|endoftext|> (EOS)
// and <|begin_of_text|> (BOS) as special added tokens. Training is the classic BPE loop: the text
// is split by the style's regex, each piece counted once per occurrence, and the most frequent
// adjacent pair merged (ties: the smallest pair of ids) until the vocabulary is full.
//   Gpt2:   ByteLevel pre-tokenizer (GPT-2's regex), merges as "a b", BOS from tokenizer_config.json
//   Llama3: Split(LLaMA-3's regex) + ByteLevel, ignore_merges, merges as ["a", "b"], BOS from the
//           TemplateProcessing post-processor
#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/byte_level.h"
#include "text/hf_tokenizer.h"
#include "text/unicode_regex.h"

namespace tessera_test {

enum class ByteLevelStyle { Gpt2, Llama3 };

inline const char* llama3_split_pattern() {
  return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

struct ByteLevelBpe {
  nlohmann::json tokenizer, config;  // tokenizer.json, tokenizer_config.json
  std::int32_t bos = -1, eos = -1;
};

// `vocab_size` tokens in all (byte tokens, merges and the two special tokens).
inline ByteLevelBpe train_byte_level_bpe(const std::string& text, int vocab_size, ByteLevelStyle style) {
  using tessera::text::byte_level::char_for_byte;
  const tessera::text::UnicodeRegex split(
      style == ByteLevelStyle::Gpt2 ? tessera::text::kGpt2SplitPattern : llama3_split_pattern(), "byte_level_bpe.h");
  // Distinct pieces (as byte ids) with their counts, in order of first occurrence.
  std::vector<std::vector<std::int32_t>> words;
  std::vector<std::int64_t> counts;
  std::unordered_map<std::string, std::size_t> index;
  for (const auto& [b, e] : split.find_all(text)) {
    const auto piece = text.substr(b, e - b);
    const auto [it, fresh] = index.emplace(piece, words.size());
    if (fresh) {
      words.emplace_back(piece.begin(), piece.end());
      for (auto& id : words.back()) id = static_cast<unsigned char>(id);
      counts.push_back(0);
    }
    ++counts[it->second];
  }
  std::vector<std::string> tokens;
  std::unordered_map<std::string, std::int32_t> ids;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(char_for_byte(static_cast<unsigned char>(b)));
    ids[tokens.back()] = b;
  }
  auto key = [](std::int32_t a, std::int32_t b) { return (std::uint64_t(std::uint32_t(a)) << 32) | std::uint32_t(b); };
  std::unordered_map<std::uint64_t, std::int64_t> pairs;              // pair -> occurrences
  std::unordered_map<std::uint64_t, std::vector<std::size_t>> where;  // pair -> words that had it
  auto count_word = [&](std::size_t w, std::int64_t sign) {
    const auto& s = words[w];
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      pairs[key(s[i], s[i + 1])] += sign * counts[w];
      if (sign > 0) where[key(s[i], s[i + 1])].push_back(w);
    }
  };
  for (std::size_t w = 0; w < words.size(); ++w) count_word(w, 1);
  nlohmann::json merges = nlohmann::json::array();
  std::vector<std::size_t> seen(words.size(), 0);
  for (std::size_t round = 1; static_cast<int>(tokens.size()) < vocab_size - 2; ++round) {
    std::uint64_t best = 0;
    std::int64_t best_count = 0;
    for (const auto& [k, c] : pairs)
      if (c > best_count || (c == best_count && c > 0 && k < best)) best = k, best_count = c;
    if (best_count == 0) break;
    const auto a = static_cast<std::int32_t>(best >> 32), b = static_cast<std::int32_t>(best & 0xFFFFFFFFu);
    const auto joined = tokens[a] + tokens[b];
    const auto [it, fresh] = ids.emplace(joined, static_cast<std::int32_t>(tokens.size()));
    if (fresh) tokens.push_back(joined);
    const auto merged = it->second;
    if (style == ByteLevelStyle::Gpt2)
      merges.push_back(tokens[a] + " " + tokens[b]);
    else
      merges.push_back({tokens[a], tokens[b]});
    const auto candidates = std::move(where[best]);
    where.erase(best);
    for (auto w : candidates) {
      if (seen[w] == round) continue;
      seen[w] = round;
      count_word(w, -1);
      auto& s = words[w];
      std::vector<std::int32_t> out;
      for (std::size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(s[i]);
        }
      }
      s = std::move(out);
      count_word(w, 1);
    }
  }
  ByteLevelBpe t;
  nlohmann::json vocab = nlohmann::json::object();
  for (std::size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  t.eos = static_cast<std::int32_t>(tokens.size());
  t.bos = t.eos + 1;
  auto added = [](std::int32_t id, const char* content) {
    return nlohmann::json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  const nlohmann::json byte_level_decoder = {
      {"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  t.tokenizer = {{"version", "1.0"},
                 {"truncation", nullptr},
                 {"padding", nullptr},
                 {"added_tokens", {added(t.eos, "<|endoftext|>"), added(t.bos, "<|begin_of_text|>")}},
                 {"normalizer", nullptr},
                 {"decoder", byte_level_decoder},
                 {"model",
                  {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"continuing_subword_prefix", nullptr},
                   {"end_of_word_suffix", nullptr},
                   {"fuse_unk", false},
                   {"byte_fallback", false},
                   {"ignore_merges", style == ByteLevelStyle::Llama3},
                   {"vocab", vocab},
                   {"merges", merges}}}};
  t.config = {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|endoftext|>"}};
  if (style == ByteLevelStyle::Gpt2) {
    t.tokenizer["pre_tokenizer"] = {
        {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    t.tokenizer["post_processor"] = {
        {"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
    t.config["add_bos_token"] = true;
  } else {
    t.tokenizer["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", llama3_split_pattern()}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
    t.tokenizer["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", nlohmann::json::array()},
        {"special_tokens",
         {{"<|begin_of_text|>", {{"id", "<|begin_of_text|>"}, {"ids", {t.bos}}, {"tokens", {"<|begin_of_text|>"}}}}}}};
  }
  return t;
}

// About `length` bytes of `text` from `begin`, both ends moved forward to whole UTF-8 characters.
inline std::string utf8_slice(const std::string& text, std::size_t begin, std::size_t length) {
  auto boundary = [&](std::size_t at) {
    while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
    return std::min(at, text.size());
  };
  const auto b = boundary(begin), e = boundary(begin + length);
  return text.substr(b, e - b);
}

// A text that exercises the split regexes: contractions in both cases, digit runs, punctuation
// runs, whitespace runs (spaces, tabs, newlines, trailing), accented and non-Latin letters, emoji.
inline std::string regex_exercise_text() {
  return "It's a test. They'RE here, WE'LL see; you'd've thought it'S done!\n"
         "Numbers: 1 12 123 1234 12345 3.14159 1,000,000 and 2024-06-01.\n"
         "Spaces:  two   three    four\ttab\t\ttabs   \n\n\n  indented line\n"
         "caf\xC3\xA9 na\xC3\xAFve \xC3\x9C"
         "ber Stra\xC3\x9F"
         "e \xE4\xBD\xA0\xE5\xA5\xBD \xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 "
         "\xF0\x9F\xA6\x99 \xE2\x80\x94 dash\xE2\x80\xA6 \xC2\xABquoted\xC2\xBB\n"
         "(parens) [brackets] {braces} <angle> ...!!! ??? --- @#$%^&*\n"
         "trailing spaces   \n"
         "end";
}

}  // namespace tessera_test
