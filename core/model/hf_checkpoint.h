#pragma once
// Hugging Face checkpoint folders: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json. Weights may be F32, F16 or BF16; every required tensor is checked
// for presence, shape and finite values.
#include <string>

#include "model/llama_model.h"

namespace tessera::model {

LlamaModel load_hf_checkpoint(const std::string& folder);

// Writes config.json and model.safetensors (weights in `dtype`: kFloat32, kFloat16 or kBFloat16)
// into `folder` atomically: the folder appears complete or not at all.
void save_hf_checkpoint(const LlamaModel& model, const std::string& folder, torch::ScalarType dtype,
                        bool replace_existing);

}  // namespace tessera::model
