#include "text/calibration.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "text/text_file.h"
#include "util/error.h"
#include "util/sha256.h"

namespace tessera::text {

std::string read_corpus(const std::string& path) {
  const auto ext = std::filesystem::path(path).extension().string();
  if (ext != ".jsonl" && ext != ".json") return read_text_file(path);
  // Lines as Python's text mode splits them; "\r" escaped inside a JSON string stays, as in json.loads.
  std::istringstream in(read_text_file(path));
  std::string line, joined;
  std::int64_t line_no = 0, documents = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw Error(path + ":" + std::to_string(line_no) + ": expected a JSON object with a \"text\" string");
    if (documents++ > 0) joined += "\n\n";
    joined += j["text"].get<std::string>();
  }
  if (joined.find_first_not_of(" \t\r\n") == std::string::npos)
    throw Error("calibration corpus " + path + " holds no text");
  return joined;
}

CalibrationSet sample_calibration(const Tokenizer& tokenizer, const std::string& corpus_path, std::int64_t samples,
                                  std::int64_t seq_len, std::uint64_t seed) {
  if (samples < 1) throw Error("calibration samples must be at least 1");
  if (seq_len < 2) throw Error("calibration sequence length must be at least 2");
  const auto ids = tokenizer.encode(read_corpus(corpus_path), true, false);
  const auto n = static_cast<std::int64_t>(ids.size());
  if (n <= seq_len)
    throw Error("calibration corpus " + corpus_path + " has " + std::to_string(n) +
                " tokens, not enough for one window of " + std::to_string(seq_len));
  CalibrationSet set;
  set.samples = samples;
  set.seq_len = seq_len;
  set.seed = seed;
  set.source = corpus_path;
  set.corpus_tokens = n;
  // mt19937_64 is specified exactly by the standard; the modulo keeps the draw independent of the
  // standard library's distribution implementation, so offsets are the same on every platform.
  std::mt19937_64 rng(seed);
  const auto range = static_cast<std::uint64_t>(n - seq_len);
  for (std::int64_t i = 0; i < samples; ++i) {
    const auto start = static_cast<std::int64_t>(rng() % range);
    set.offsets.push_back(start);
    set.tokens.insert(set.tokens.end(), ids.begin() + start, ids.begin() + start + seq_len);
  }
  set.token_sha256 = sha256_hex(set.tokens.data(), set.tokens.size() * sizeof(std::int32_t));
  return set;
}

}  // namespace tessera::text
