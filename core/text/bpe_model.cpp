#include "text/bpe_model.h"

#include <queue>

#include "text/byte_piece.h"
#include "util/error.h"
#include "util/utf8.h"

namespace tessera::text {

BpeModel::BpeModel(std::unordered_map<std::string, std::int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
                   const std::string& source)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  std::int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) {
    if (id < 0) throw Error(source + ": token \"" + token + "\" has the negative id " + std::to_string(id));
    max_id = std::max(max_id, id);
  }
  pieces_.assign(static_cast<std::size_t>(max_id) + 1, std::string());
  for (const auto& [token, id] : vocab_) {
    auto& slot = pieces_[static_cast<std::size_t>(id)];
    if (slot.empty() || token < slot) slot = token;  // duplicate ids: keep one, deterministically
  }
  for (int b = 0; b < 256; ++b) byte_ids_[b] = token_to_id(byte_piece(static_cast<unsigned char>(b)));
  if (!options_.unk_token.empty()) {
    unk_id_ = token_to_id(options_.unk_token);
    if (unk_id_ < 0)
      throw Error(source + ": the unknown token \"" + options_.unk_token + "\" is not in the vocabulary");
  }
  merges_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    // Plain references, not a structured binding: lambdas may capture those only from C++20.
    const auto& a = merges[rank].first;
    const auto& b = merges[rank].second;
    auto describe = [&] { return "merge " + std::to_string(rank) + " (\"" + a + "\" \"" + b + "\")"; };
    const auto a_id = token_to_id(a), b_id = token_to_id(b);
    if (a_id < 0) throw Error(source + ": " + describe() + " names \"" + a + "\", which is not in the vocabulary");
    if (b_id < 0) throw Error(source + ": " + describe() + " names \"" + b + "\", which is not in the vocabulary");
    const auto merged = token_to_id(a + b);
    if (merged < 0)
      throw Error(source + ": " + describe() + " makes \"" + a + b + "\", which is not in the vocabulary");
    // As in `tokenizers`, a pair listed twice keeps its last rank.
    merges_[key(a_id, b_id)] = {static_cast<std::int32_t>(rank), merged};
  }
}

std::int32_t BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

const std::string& BpeModel::id_to_token(std::int32_t id) const {
  static const std::string none;
  if (id < 0 || id >= static_cast<std::int32_t>(pieces_.size())) return none;
  return pieces_[static_cast<std::size_t>(id)];
}

bool BpeModel::has_byte_tokens() const {
  for (auto id : byte_ids_)
    if (id < 0) return false;
  return true;
}

void BpeModel::tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    const auto id = token_to_id(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<std::int32_t> symbols;
  symbols.reserve(word.size());
  bool pending_unk = false;
  std::string ch;
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t n = utf8::char_length(word, i);
    ch.assign(word.substr(i, n));
    i += n;
    const auto id = token_to_id(ch);
    if (id >= 0) {
      if (pending_unk) symbols.push_back(unk_id_);
      pending_unk = false;
      symbols.push_back(id);
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        if (pending_unk) symbols.push_back(unk_id_);
        pending_unk = false;
        for (char c : ch) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ < 0) continue;  // no unknown token: `tokenizers` drops the character
    if (pending_unk && !options_.fuse_unk) symbols.push_back(unk_id_);
    pending_unk = true;
  }
  if (pending_unk) symbols.push_back(unk_id_);
  merge_all(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
}

void BpeModel::merge_all(std::vector<std::int32_t>& symbols) const {
  const std::size_t n = symbols.size();
  if (n < 2 || merges_.empty()) return;
  std::vector<std::int64_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<std::int64_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<std::int64_t>(i) + 1 : -1;
  }
  struct Candidate {
    std::int32_t rank;
    std::int64_t pos;
    std::int32_t merged;
    bool operator<(const Candidate& o) const {  // min-heap on (rank, pos)
      if (rank != o.rank) return rank > o.rank;
      return pos > o.pos;
    }
  };
  std::priority_queue<Candidate> heap;
  auto push = [&](std::int64_t left) {
    if (left < 0) return;
    const std::int64_t right = next[static_cast<std::size_t>(left)];
    if (right < 0) return;
    auto it = merges_.find(key(symbols[static_cast<std::size_t>(left)], symbols[static_cast<std::size_t>(right)]));
    if (it != merges_.end()) heap.push({it->second.first, left, it->second.second});
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push(static_cast<std::int64_t>(i));
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const auto l = static_cast<std::size_t>(c.pos);
    if (!alive[l] || next[l] < 0) continue;
    const auto r = static_cast<std::size_t>(next[l]);
    // A stale entry: the pair at this position changed since it was queued.
    auto it = merges_.find(key(symbols[l], symbols[r]));
    if (it == merges_.end() || it->second.second != c.merged) continue;
    symbols[l] = c.merged;
    alive[r] = false;
    next[l] = next[r];
    if (next[r] >= 0) prev[static_cast<std::size_t>(next[r])] = c.pos;
    push(prev[l]);
    push(c.pos);
  }
  std::vector<std::int32_t> merged;
  merged.reserve(n);
  for (std::int64_t i = 0; i >= 0; i = next[static_cast<std::size_t>(i)])
    merged.push_back(symbols[static_cast<std::size_t>(i)]);
  symbols = std::move(merged);
}

}  // namespace tessera::text
