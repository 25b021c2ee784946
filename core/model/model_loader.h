#pragma once
// Opens any supported checkpoint: a Hugging Face folder (or its model.safetensors / config.json)
// or a llama2.c .bin file, or a GGUF llama file (F32/F16/Q4_1/Q5_1 tensors, e.g. a Tessera export).
#include <string>

#include "model/llama_model.h"

namespace tessera::model {

enum class CheckpointFormat { HuggingFace, Llama2c, Gguf };

CheckpointFormat detect_checkpoint_format(const std::string& path);  // throws if neither
std::string checkpoint_format_name(CheckpointFormat format);
LlamaModel load_model(const std::string& path);
LlamaConfig read_model_config(const std::string& path);  // without loading weights
// One decoder block's weights (fp32). Reads only that block from a Hugging Face folder; other
// formats (small llama2.c files, GGUF, packed exports) are loaded whole.
DecoderBlockWeights load_block_weights(const std::string& path, std::int64_t block);

}  // namespace tessera::model
