#pragma once
// The BPE model of a Hugging Face tokenizer.json, encoding one pre-tokenized word the way the
// `tokenizers` library does: the word is split into characters (code points), each looked up in
// the vocabulary (else its UTF-8 bytes as <0xNN> tokens when byte_fallback is on and all of them
// exist, else the unknown token, consecutive ones fused when fuse_unk is on), then the adjacent
// pair with the lowest merge rank is merged, the leftmost among equal ranks, until no pair has a
// merge. A min-heap over a linked list makes this O(n log n) for long words.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tessera::text {

struct BpeOptions {
  std::string unk_token;  // "" = none: characters that are not in the vocabulary are dropped
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;  // a word that is itself in the vocabulary is taken whole
};

class BpeModel {
 public:
  // `source` names the file in error messages. Throws when a merge names a token that is not in
  // the vocabulary, or the unknown token is missing from it.
  BpeModel(std::unordered_map<std::string, std::int32_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
           const std::string& source);

  // Appends the ids of `word` to `out`.
  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const;
  std::int32_t token_to_id(std::string_view token) const;                              // -1 if absent
  const std::string& id_to_token(std::int32_t id) const;                               // "" if no token has this id
  std::int64_t id_limit() const { return static_cast<std::int64_t>(pieces_.size()); }  // max id + 1
  std::size_t merge_count() const { return merges_.size(); }
  // Whether the vocabulary has the 256 <0xNN> byte tokens byte fallback needs.
  bool has_byte_tokens() const;
  // Id of the <0xNN> token for `byte`, -1 if absent.
  std::int32_t byte_token(unsigned char byte) const { return byte_ids_[byte]; }

 private:
  static std::uint64_t key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  void merge_all(std::vector<std::int32_t>& symbols) const;

  std::unordered_map<std::string, std::int32_t> vocab_;
  std::vector<std::string> pieces_;
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> merges_;  // -> rank, id
  std::int32_t byte_ids_[256];
  std::int32_t unk_id_ = -1;
  BpeOptions options_;
};

}  // namespace tessera::text
