#include "model/model_loader.h"

#include <filesystem>

#include "model/gguf_import.h"
#include "model/hf_checkpoint.h"
#include "model/llama2c_checkpoint.h"
#include "model/quantized_import.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace tessera::model {
namespace {

// A path to model.safetensors or config.json means its folder.
std::string model_folder(const std::string& path) {
  const fs::path p(path);
  if (fs::is_directory(p)) return path;
  const auto name = p.filename().string();
  if (name == "config.json" || p.extension() == ".safetensors") return p.parent_path().string();
  return "";
}

}  // namespace

CheckpointFormat detect_checkpoint_format(const std::string& path) {
  if (!fs::exists(path)) throw Error("model " + path + " does not exist");
  const std::string folder = model_folder(path);
  if (!folder.empty()) {
    if (!fs::exists(fs::path(folder) / "config.json"))
      throw Error(folder + ": no config.json (not a Hugging Face model folder)");
    return CheckpointFormat::HuggingFace;
  }
  if (fs::path(path).extension() == ".bin") return CheckpointFormat::Llama2c;
  if (fs::path(path).extension() == ".gguf") return CheckpointFormat::Gguf;
  throw Error(path + ": unknown model format (expected a Hugging Face folder, a llama2.c .bin or a .gguf)");
}

std::string checkpoint_format_name(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::HuggingFace:
      return "Hugging Face safetensors";
    case CheckpointFormat::Llama2c:
      return "llama2.c";
    case CheckpointFormat::Gguf:
      return "GGUF";
  }
  return "?";
}

LlamaModel load_model(const std::string& path) {
  const auto format = detect_checkpoint_format(path);
  if (format == CheckpointFormat::Gguf) return load_gguf_model(path);
  if (format == CheckpointFormat::HuggingFace) {
    const auto folder = model_folder(path);
    // GPTQ / AWQ exports are dequantized on load with their readers' conventions.
    if (is_packed_checkpoint(folder)) return load_packed_checkpoint(folder);
    return load_hf_checkpoint(folder);
  }
  return load_llama2c_checkpoint(path);
}

DecoderBlockWeights load_block_weights(const std::string& path, std::int64_t block) {
  if (detect_checkpoint_format(path) == CheckpointFormat::HuggingFace) {
    const auto folder = model_folder(path);
    if (!is_packed_checkpoint(folder)) return load_hf_block(folder, block);
  }
  const auto model = load_model(path);
  if (block < 0 || block >= model.config().num_layers)
    throw Error(path + " has " + std::to_string(model.config().num_layers) + " blocks; there is no block " +
                std::to_string(block));
  return model.weights().blocks[static_cast<std::size_t>(block)];
}

LlamaConfig read_model_config(const std::string& path) {
  const auto format = detect_checkpoint_format(path);
  if (format == CheckpointFormat::Gguf) return gguf_llama_config(formats::GgufFile(path));
  if (format == CheckpointFormat::HuggingFace)
    return LlamaConfig::from_hf_config_file((fs::path(model_folder(path)) / "config.json").string());
  return read_llama2c_config(path);
}

}  // namespace tessera::model
