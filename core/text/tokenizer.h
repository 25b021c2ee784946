#pragma once
// The tokenizer interface the model, the evaluator and the calibration sampler use.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tessera::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<std::int32_t> encode(const std::string& text, bool add_bos, bool add_eos) const = 0;
  // Text of one token as it should be appended after `previous` (handles byte pieces and the
  // leading space that follows BOS).
  virtual std::string decode_token(std::int32_t previous, std::int32_t token) const = 0;
  std::string decode(const std::vector<std::int32_t>& tokens) const;
  virtual std::int64_t vocab_size() const = 0;
  virtual std::int32_t bos_id() const = 0;
  virtual std::int32_t eos_id() const = 0;
  virtual std::string kind() const = 0;  // "sentencepiece", "llama2.c", ...
  virtual const std::string& path() const = 0;
};

}  // namespace tessera::text
