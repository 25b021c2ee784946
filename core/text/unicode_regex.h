#pragma once
// A Unicode-aware regular expression for tokenizer.json's split patterns (GPT-2, LLaMA-3, Qwen2),
// backed by PCRE2 in UTF + UCP mode so that \p{L}, \p{N}, \s and \w follow Unicode properties as
// in the Oniguruma engine Hugging Face tokenizers uses. The subject must be valid UTF-8.
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::text {

class UnicodeRegex {
 public:
  // `what` names the pattern's origin in error messages ("tokenizer.json: pre_tokenizer Split").
  UnicodeRegex(const std::string& pattern, const std::string& what);
  ~UnicodeRegex();
  UnicodeRegex(const UnicodeRegex&) = delete;
  UnicodeRegex& operator=(const UnicodeRegex&) = delete;

  // Non-overlapping matches, left to right, as [begin, end) byte offsets. An empty match is
  // followed by a search one character further on. Throws when `text` is not valid UTF-8.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view text) const;
  // Whether the pattern matches anywhere in `text`.
  bool search(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  void check_subject(std::string_view text) const;
  std::string pattern_, what_;
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace tessera::text
