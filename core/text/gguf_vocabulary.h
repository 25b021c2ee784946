#pragma once
// A model's tokenizer as the tokenizer.ggml.* metadata of a GGUF file, and back.
//
// llama.cpp has two vocabulary models Tessera writes:
//   - "llama" (SentencePiece): llama2.c tokenizers, SentencePiece .model files and
//     SentencePiece-style BPE tokenizer.json (merge ranks as scores, see gguf_vocabulary.cpp);
//   - "gpt2" (byte-level BPE): tokenizer.json with a ByteLevel pre-tokenizer (GPT-2's regex) or a
//     Split regex + ByteLevel (LLaMA-3), written with its merges and the name of the llama.cpp
//     pre-tokenizer (tokenizer.ggml.pre) that splits text with the same regex. A regex llama.cpp
//     has no pre-tokenizer for, or any setting llama.cpp would tokenize differently (a normalizer,
//     add_prefix_space, ignore_merges not as the pre-tokenizer has it, ...), is refused by name.
// Reading a "gpt2" vocabulary back gives a tokenizer that encodes and decodes as the tokenizer.json
// it was written from.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/gguf_file.h"
#include "text/tokenizer.h"

namespace tessera::text {

struct GgufVocabulary {
  std::string model = "llama";  // tokenizer.ggml.model: "llama" or "gpt2"
  std::string pre;              // tokenizer.ggml.pre ("gpt2" model only)
  std::vector<std::string> tokens;
  std::vector<float> scores;  // "llama" model only
  std::vector<std::int32_t>
      types;  // llama_token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<std::string> merges;                   // "gpt2" model only: "a b" in rank order
  std::int32_t bos = 1, eos = 2, unk = 0, pad = -1;  // -1: not written
  bool add_bos = true, add_eos = false;
};

// The tokenizer at `tokenizer_path` as GGUF vocabulary data, padded to `model_vocab` tokens as
// convert_hf_to_gguf pads; throws naming what llama.cpp could not reproduce.
GgufVocabulary gguf_vocabulary(const std::string& tokenizer_path, std::int64_t model_vocab);
// Writes the tokenizer.ggml.* keys.
void add_gguf_vocabulary(formats::GgufWriter& g, const GgufVocabulary& vocab);
// The tokenizer of a file whose tokenizer.ggml.model is "gpt2" (byte-level BPE).
std::unique_ptr<Tokenizer> load_gguf_bpe_tokenizer(const formats::GgufFile& file);
// The vocabulary embedded in a GGUF model (`tessera eval --model FILE.gguf`): a "llama" one as a
// llama2.c-style tokenizer (tokens and scores), which is what the run used when its tokenizer was a
// llama2.c one; a "gpt2" one as the tokenizer.json it was written from.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path);

}  // namespace tessera::text
