#pragma once
// Opens a tokenizer by file type, or finds the one that belongs to a model.
#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace tessera::text {

// `*.json` (tokenizer.json) -> HfTokenizer; `.model` -> SentencePiece; a llama2.c
// `tokenizer.bin`/`tok*.bin` -> Llama2cTokenizer; a `.gguf` model -> its embedded vocabulary (as a
// llama2.c-style tokenizer). A folder: the tokenizer found in it.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// The tokenizer that ships with a model, in the model's folder (or beside a llama2.c file):
// tokenizer.json, then tokenizer.model, then tokenizer.bin, then the one tok*.bin. Returns "" when
// there is none (or several tok*.bin).
std::string find_tokenizer_for_model(const std::string& model_path);

// Throws naming both files when the tokenizer can produce ids the model has no embedding for.
void check_tokenizer_matches_model(const Tokenizer& tokenizer, std::int64_t model_vocab, const std::string& model_path);

// Copies a tokenizer into a model folder under the name discovery looks for (tokenizer.json /
// tokenizer.model / tokenizer.bin), with tokenizer_config.json when it sits beside a tokenizer.json.
// A GGUF model's embedded vocabulary has no file of its own: nothing is copied, with a warning.
void copy_tokenizer_files(const std::string& tokenizer_path, const std::string& folder);

}  // namespace tessera::text
