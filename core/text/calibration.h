#pragma once
// Calibration data: n windows of L tokens drawn with a seeded generator from one corpus (plain
// text, or JSON lines with a "text" field such as the C4 file, documents joined by "\n\n" as in
// GPTQ's wikitext2 recipe). The whole corpus is tokenized once with one BOS at the start; window
// starts are drawn uniformly from [0, tokens - L). The sample offsets and a SHA-256 of the token
// ids are recorded so that two runs can prove they used the same data.
#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace tessera::text {

struct CalibrationSet {
  std::vector<std::int32_t> tokens;  // n * L ids, window-major
  std::int64_t samples = 0, seq_len = 0;
  std::vector<std::int64_t> offsets;  // start of each window in the tokenized corpus
  std::uint64_t seed = 0;
  std::string source;        // corpus path
  std::string token_sha256;  // hash of `tokens` (int32 little-endian)
  std::int64_t corpus_tokens = 0;
};

// Reads a corpus: plain text, or (for .jsonl / .json files) one JSON object per line with "text".
std::string read_corpus(const std::string& path);

CalibrationSet sample_calibration(const Tokenizer& tokenizer, const std::string& corpus_path, std::int64_t samples,
                                  std::int64_t seq_len, std::uint64_t seed);

}  // namespace tessera::text
