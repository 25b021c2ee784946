#pragma once
// Hugging Face checkpoint folders: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json. Weights may be F32, F16 or BF16; every required tensor is checked
// for presence, shape and finite values.
#include <functional>
#include <map>
#include <string>

#include "model/llama_model.h"

namespace tessera::model {

LlamaModel load_hf_checkpoint(const std::string& folder);

// Extras for save_hf_checkpoint: safetensors metadata, and a callback that runs on the complete
// temporary folder before it is renamed into place (to add files or verify them; throwing removes
// everything).
struct HfSaveOptions {
  std::map<std::string, std::string> metadata;
  std::function<void(const std::string& tmp_folder)> finish;
};

// Writes config.json and model.safetensors (weights in `dtype`: kFloat32, kFloat16 or kBFloat16)
// into `folder` atomically: the folder appears complete or not at all.
void save_hf_checkpoint(const LlamaModel& model, const std::string& folder, torch::ScalarType dtype,
                        bool replace_existing, const HfSaveOptions& options = {});

}  // namespace tessera::model
