#pragma once
// A Hugging Face tokenizer.json with a BPE model, encoded and decoded as the `tokenizers` library
// does, for the two families LLaMA-like checkpoints ship:
//   - SentencePiece-style: normalizers Prepend("▁") + Replace(" " -> "▁") or a Metaspace
//     pre-tokenizer, byte fallback to <0xNN> tokens (Llama-2-hf, Mistral, TinyStories-656K);
//   - byte-level: a ByteLevel pre-tokenizer (GPT-2 regex) or Split(regex) + ByteLevel, with the
//     GPT-2 byte-to-unicode alphabet (LLaMA-3, Qwen2, SmolLM).
// The pipeline is: added tokens split off the raw text (those with normalized=false), each
// remaining part normalized and split on the normalized added tokens, pre-tokenized, then BPE.
// Components Tessera does not implement are refused by name when the file is read.
//
// BOS/EOS: tokenizer_config.json beside the file, when present, names bos_token/eos_token and may
// set add_bos_token/add_eos_token (as transformers' LlamaTokenizerFast, these override the
// post-processor); otherwise the TemplateProcessing post-processor's special tokens before and
// after $A are what encode(add_bos, add_eos) adds. A tokenizer that adds none (Qwen2) adds nothing,
// and bos_id() is -1 when no BOS is defined.
//
// decode_token skips special tokens (returns ""), returns a <0xNN> byte piece or a byte-level
// token as its raw bytes (concatenated they form the UTF-8 text), and applies the decoders'
// start-of-text rules (Strip, Metaspace) to the first token, i.e. when `previous` is -1 or BOS.
#include <memory>

#include "text/tokenizer.h"

namespace tessera::text {

// GPT-2's pre-tokenizer pattern, which a ByteLevel pre-tokenizer with use_regex splits by.
inline constexpr const char* kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class HfTokenizer : public Tokenizer {
 public:
  // Reads tokenizer.json at `path` and tokenizer_config.json beside it when present.
  explicit HfTokenizer(const std::string& path);
  // A tokenizer.json and its tokenizer_config.json ("" for none) given as text; `source` names them
  // in errors and is path().
  HfTokenizer(const std::string& source, const std::string& tokenizer_json, const std::string& config_json);
  ~HfTokenizer() override;
  HfTokenizer(const HfTokenizer&) = delete;
  HfTokenizer& operator=(const HfTokenizer&) = delete;

  std::vector<std::int32_t> encode(const std::string& text, bool add_bos, bool add_eos) const override;
  std::string decode_token(std::int32_t previous, std::int32_t token) const override;
  std::int64_t vocab_size() const override;  // max id + 1 over the vocabulary and added tokens
  std::int32_t bos_id() const override;
  std::int32_t eos_id() const override;
  // "tokenizer.json (BPE, sentencepiece-style)" or "tokenizer.json (BPE, byte-level)"
  std::string kind() const override;
  const std::string& path() const override { return path_; }

  bool byte_level() const;
  // The string of an id (an added token's content or the vocabulary entry), "" if none.
  std::string token(std::int32_t id) const;
  std::int32_t token_id(const std::string& token) const;  // -1 if none
  bool is_special(std::int32_t id) const;
  // The rank of the first merge that forms `token`, -1 if no merge does (single characters, bytes,
  // added tokens).
  std::int64_t merge_rank(const std::string& token) const;

 private:
  struct Impl;
  // config_json: nullptr when there is no tokenizer_config.json.
  void init(const std::string& tokenizer_json, const std::string* config_json, const std::string& config_name);
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::text
