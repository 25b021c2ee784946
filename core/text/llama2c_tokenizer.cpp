#include "text/llama2c_tokenizer.h"

#include <cstring>
#include <limits>
#include <queue>

#include "io/mapped_file.h"
#include "text/byte_piece.h"
#include "util/error.h"

namespace tessera::text {

Llama2cTokenizer::Llama2cTokenizer(const std::string& path, std::int64_t vocab_size) : path_(path) {
  io::MappedFile file(path);
  const std::uint8_t* p = file.data();
  const std::uint8_t* end = p + file.size();
  auto read = [&](void* dst, std::size_t n, const char* what) {
    if (static_cast<std::size_t>(end - p) < n)
      throw Error(path + ": truncated llama2.c tokenizer while reading " + what + " of token " +
                  std::to_string(pieces_.size()));
    std::memcpy(dst, p, n);
    p += n;
  };
  std::int32_t max_token_length = 0;
  read(&max_token_length, 4, "the header");
  if (max_token_length <= 0 || max_token_length > 1024)
    throw Error(path + ": max_token_length " + std::to_string(max_token_length) +
                " is implausible: not a llama2.c tokenizer.bin");
  while (p < end && (vocab_size == 0 || static_cast<std::int64_t>(pieces_.size()) < vocab_size)) {
    float score = 0;
    std::int32_t len = 0;
    read(&score, 4, "the score");
    read(&len, 4, "the length");
    if (len < 0 || len > max_token_length)
      throw Error(path + ": token " + std::to_string(pieces_.size()) + " has length " + std::to_string(len) +
                  " (max_token_length is " + std::to_string(max_token_length) + "): not a llama2.c tokenizer.bin");
    std::string piece(static_cast<std::size_t>(len), '\0');
    read(piece.data(), static_cast<std::size_t>(len), "the bytes");
    ids_.emplace(piece, static_cast<std::int32_t>(pieces_.size()));  // first occurrence wins
    pieces_.push_back(std::move(piece));
    scores_.push_back(score);
  }
  if (vocab_size != 0 && static_cast<std::int64_t>(pieces_.size()) < vocab_size)
    throw Error(path + ": holds " + std::to_string(pieces_.size()) + " tokens, expected " + std::to_string(vocab_size));
  if (pieces_.size() < 259)
    throw Error(path + ": only " + std::to_string(pieces_.size()) +
                " tokens; a llama2.c tokenizer has at least the 3 specials and 256 byte tokens");
}

Llama2cTokenizer::Llama2cTokenizer(std::string path, std::vector<std::string> pieces, std::vector<float> scores)
    : path_(std::move(path)), pieces_(std::move(pieces)), scores_(std::move(scores)) {
  if (pieces_.size() != scores_.size() || pieces_.size() < 259)
    throw Error(path_ + ": a llama2.c-style vocabulary needs as many scores as pieces and at least 259 tokens");
  for (std::size_t i = 0; i < pieces_.size(); ++i) ids_.emplace(pieces_[i], static_cast<std::int32_t>(i));
}

std::int32_t Llama2cTokenizer::lookup(const std::string& s) const {
  auto it = ids_.find(s);
  return it == ids_.end() ? -1 : it->second;
}

// run.c merges greedily: each round merges the adjacent pair whose merged piece has the highest
// score, the leftmost one among equal scores, until no pair is in the vocabulary. Scanning every
// pair every round is quadratic (minutes for a 1 MB text); a max-heap of candidate pairs over a
// linked list performs the same merges in the same order in O(n log n). Candidates are ordered by
// score, then by the original position of their left token, which preserves run.c's leftmost rule
// because merging never reorders tokens. Stale candidates are recognised by version counters.
void Llama2cTokenizer::merge_pairs(std::vector<std::int32_t>& tokens) const {
  const std::size_t n = tokens.size();
  if (n < 2) return;
  std::vector<std::int64_t> prev(n), next(n);
  std::vector<std::uint32_t> version(n, 0);
  std::vector<bool> alive(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<std::int64_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<std::int64_t>(i) + 1 : -1;
  }
  struct Candidate {
    float score;
    std::int64_t left, right;
    std::int32_t merged;
    std::uint32_t left_version, right_version;
    bool operator<(const Candidate& o) const {  // max-heap: higher score, then smaller position
      if (score != o.score) return score < o.score;
      return left > o.left;
    }
  };
  std::priority_queue<Candidate> heap;
  auto push = [&](std::int64_t left, std::int64_t right) {
    if (left < 0 || right < 0) return;
    const auto id = lookup(pieces_[static_cast<std::size_t>(tokens[static_cast<std::size_t>(left)])] +
                           pieces_[static_cast<std::size_t>(tokens[static_cast<std::size_t>(right)])]);
    if (id < 0) return;
    heap.push({scores_[static_cast<std::size_t>(id)], left, right, id, version[static_cast<std::size_t>(left)],
               version[static_cast<std::size_t>(right)]});
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const auto l = static_cast<std::size_t>(c.left), r = static_cast<std::size_t>(c.right);
    if (!alive[l] || !alive[r] || next[l] != c.right || version[l] != c.left_version || version[r] != c.right_version)
      continue;
    tokens[l] = c.merged;
    ++version[l];
    alive[r] = false;
    next[l] = next[r];
    if (next[r] >= 0) prev[static_cast<std::size_t>(next[r])] = c.left;
    push(prev[l], c.left);
    push(c.left, next[l]);
  }
  std::vector<std::int32_t> merged;
  for (std::int64_t i = 0; i >= 0; i = next[static_cast<std::size_t>(i)])
    merged.push_back(tokens[static_cast<std::size_t>(i)]);
  tokens = std::move(merged);
}

std::vector<std::int32_t> Llama2cTokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
  std::vector<std::int32_t> tokens;
  if (add_bos) tokens.push_back(bos_id());
  // run.c adds the dummy prefix (the token for " ") whenever the text is non-empty.
  if (!text.empty()) {
    const auto space = lookup(" ");
    if (space >= 0) tokens.push_back(space);
  }
  // One token per UTF-8 code point, or its bytes as <0xNN> tokens (ids byte + 3) if unknown.
  std::string buffer;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) buffer.clear();  // not a continuation byte: a new code point begins
    buffer.push_back(static_cast<char>(c));
    const bool next_is_continuation = i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
    if (next_is_continuation && buffer.size() < 4) continue;
    const auto id = lookup(buffer);
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (char b : buffer) tokens.push_back(static_cast<unsigned char>(b) + 3);
    }
    buffer.clear();
  }
  merge_pairs(tokens);
  if (add_eos) tokens.push_back(eos_id());
  return tokens;
}

std::string Llama2cTokenizer::decode_token(std::int32_t previous, std::int32_t token) const {
  if (token < 0 || token >= static_cast<std::int32_t>(pieces_.size()))
    throw Error("token id " + std::to_string(token) + " is outside the tokenizer's vocabulary (" +
                std::to_string(pieces_.size()) + ")");
  if (token == bos_id() || token == eos_id()) return "";  // "\n<s>\n" and "\n</s>\n" are markers
  const std::string& piece = pieces_[static_cast<std::size_t>(token)];
  // run.c strips the leading space of the first piece after BOS.
  if (previous == bos_id() && !piece.empty() && piece[0] == ' ') return piece.substr(1);
  const int byte = byte_of_piece(piece);
  if (byte >= 0) return std::string(1, static_cast<char>(byte));
  return piece;
}

}  // namespace tessera::text
