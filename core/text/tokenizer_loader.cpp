#include "text/tokenizer_loader.h"

#include <filesystem>

#include "text/gguf_vocabulary.h"
#include "text/hf_tokenizer.h"
#include "text/llama2c_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace tessera::text {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (!fs::exists(path)) throw Error("tokenizer " + path + " does not exist");
  if (fs::is_directory(path)) {
    const std::string found = find_tokenizer_for_model(path);
    if (found.empty()) throw Error(path + ": no tokenizer.json, tokenizer.model or tokenizer.bin in this folder");
    return load_tokenizer(found);
  }
  const std::string ext = fs::path(path).extension().string();
  const std::string name = fs::path(path).filename().string();
  if (ext == ".model") return std::make_unique<SentencePieceTokenizer>(path);
  if (ext == ".bin") return std::make_unique<Llama2cTokenizer>(path);
  if (ext == ".gguf") return load_gguf_tokenizer(path);  // the vocabulary embedded in a GGUF model
  if (ext == ".json") {
    if (name == "tokenizer_config.json")
      throw Error(path + ": this is the tokenizer's settings; pass the tokenizer.json beside it");
    return std::make_unique<HfTokenizer>(path);
  }
  throw Error(path +
              ": unknown tokenizer type (expected a Hugging Face tokenizer.json, a SentencePiece "
              ".model or a llama2.c .bin)");
}

std::string find_tokenizer_for_model(const std::string& model_path) {
  const fs::path p(model_path);
  if (p.extension() == ".gguf") return model_path;  // a GGUF file carries its own vocabulary
  const fs::path dir = fs::is_directory(p) ? p : p.parent_path();
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer.bin"}) {
    if (fs::exists(dir / name)) return (dir / name).string();
  }
  std::string found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir.empty() ? "." : dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("tok", 0) == 0 && entry.path().extension() == ".bin") {
      if (!found.empty()) return "";  // ambiguous: let the user choose
      found = entry.path().string();
    }
  }
  return found;
}

void check_tokenizer_matches_model(const Tokenizer& tokenizer, std::int64_t model_vocab,
                                   const std::string& model_path) {
  if (tokenizer.vocab_size() > model_vocab)
    throw Error("tokenizer " + tokenizer.path() + " has " + std::to_string(tokenizer.vocab_size()) +
                " tokens but model " + model_path + " has only " + std::to_string(model_vocab) +
                " embeddings: this is not the model's tokenizer");
}

void copy_tokenizer_files(const std::string& tokenizer_path, const std::string& folder) {
  const auto ext = fs::path(tokenizer_path).extension().string();
  if (ext == ".gguf") {  // a vocabulary inside a model file: no tokenizer file of its own to copy
    logger()->warn("the tokenizer is the vocabulary embedded in {}; no tokenizer file was copied to {}", tokenizer_path,
                   folder);
    return;
  }
  const std::string name = ext == ".model" ? "tokenizer.model" : ext == ".json" ? "tokenizer.json" : "tokenizer.bin";
  std::error_code ec;
  fs::copy_file(tokenizer_path, fs::path(folder) / name, fs::copy_options::overwrite_existing, ec);
  if (ec) throw Error("cannot copy tokenizer " + tokenizer_path + " to " + folder + ": " + ec.message());
  const auto config = fs::path(tokenizer_path).parent_path() / "tokenizer_config.json";
  if (ext == ".json" && fs::exists(config)) {
    fs::copy_file(config, fs::path(folder) / "tokenizer_config.json", fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error("cannot copy " + config.string() + " to " + folder + ": " + ec.message());
  }
}

}  // namespace tessera::text
