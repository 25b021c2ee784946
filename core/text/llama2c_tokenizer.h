#pragma once
// llama2.c's tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length and
// the UTF-8 bytes. Encoding follows run.c exactly: a dummy-prefix space token, one token per UTF-8
// code point (or per byte through <0xNN> byte fallback), then greedy merging of the adjacent pair
// whose merged string has the highest score, until no pair merges.
#include <unordered_map>

#include "text/tokenizer.h"

namespace tessera::text {

class Llama2cTokenizer : public Tokenizer {
 public:
  // vocab_size: number of entries to read; 0 reads until the end of the file.
  explicit Llama2cTokenizer(const std::string& path, std::int64_t vocab_size = 0);
  // From pieces and scores held elsewhere (a GGUF file's vocabulary); `path` names the source.
  Llama2cTokenizer(std::string path, std::vector<std::string> pieces, std::vector<float> scores);

  std::vector<std::int32_t> encode(const std::string& text, bool add_bos, bool add_eos) const override;
  std::string decode_token(std::int32_t previous, std::int32_t token) const override;
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(pieces_.size()); }
  std::int32_t bos_id() const override { return 1; }
  std::int32_t eos_id() const override { return 2; }
  std::string kind() const override { return "llama2.c"; }
  const std::string& path() const override { return path_; }
  const std::string& piece(std::int32_t id) const { return pieces_.at(static_cast<std::size_t>(id)); }
  float score(std::int32_t id) const { return scores_.at(static_cast<std::size_t>(id)); }

 private:
  std::int32_t lookup(const std::string& s) const;
  void merge_pairs(std::vector<std::int32_t>& tokens) const;
  std::string path_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, std::int32_t> ids_;
};

}  // namespace tessera::text
