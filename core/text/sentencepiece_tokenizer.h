#pragma once
// A SentencePiece .model (e.g. the Llama 2 tokenizer) through libsentencepiece, reached through the
// bridge module (core/CMakeLists.txt explains why it is loaded with dlopen).
#include "text/tokenizer.h"

namespace tessera::text {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path);
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<std::int32_t> encode(const std::string& text, bool add_bos, bool add_eos) const override;
  std::string decode_token(std::int32_t previous, std::int32_t token) const override;
  std::int64_t vocab_size() const override { return vocab_size_; }
  std::int32_t bos_id() const override { return bos_id_; }
  std::int32_t eos_id() const override { return eos_id_; }
  std::string kind() const override { return "sentencepiece"; }
  const std::string& path() const override { return path_; }
  std::string piece(std::int32_t id) const;  // raw piece, "▁" for spaces
  float score(std::int32_t id) const;
  bool is_byte(std::int32_t id) const;

 private:
  std::string path_;
  void* handle_ = nullptr;
  std::int64_t vocab_size_ = 0;
  std::int32_t bos_id_ = -1, eos_id_ = -1;
};

}  // namespace tessera::text
