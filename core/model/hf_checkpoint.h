#pragma once
// Hugging Face checkpoint folders: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json. Weights may be F32, F16 or BF16; every required tensor is checked
// for presence, shape and finite values.
#include <functional>
#include <map>
#include <string>

#include "io/safetensors.h"
#include "model/llama_model.h"

namespace tessera::model {

// Supplies a tensor that the folder does not store as a float tensor (a packed GPTQ/AWQ Linear's
// dequantized weight, by its ".weight" name); returns an undefined tensor for ordinary tensors.
using TensorResolver = std::function<torch::Tensor(const std::string& name)>;

// Metadata key of the per-tensor SHA-256 digests; a loader verifies them when present.
inline constexpr const char* kTensorDigestsKey = "tessera_sha256";

LlamaModel load_hf_checkpoint(const std::string& folder, const TensorResolver& resolver = {});
// One decoder block's weights, without loading the other blocks (safetensors are mapped, so a
// plain checkpoint's other tensors are not read; a Tessera export's recorded digests are still
// verified over the whole file): a layer inspection of a 7B run does not load the whole model.
DecoderBlockWeights load_hf_block(const std::string& folder, std::int64_t block);

// Extras for save_hf_checkpoint: safetensors metadata, and a callback that runs on the complete
// temporary folder before it is renamed into place (to add files or verify them; throwing removes
// everything).
struct HfSaveOptions {
  std::map<std::string, std::string> metadata;
  std::function<void(const std::string& tmp_folder)> finish;
  // Writes a tensor in its own way (e.g. packed GPTQ/AWQ tensors instead of a Linear's float
  // weight) and returns true; false leaves the tensor to the default float writer.
  std::function<bool(const std::string& name, io::SafetensorsWriter& writer)> write_tensor;
  // Record each tensor's SHA-256 in the metadata (key kTensorDigestsKey) so loaders detect corruption.
  bool tensor_digests = false;
};

// Writes config.json and model.safetensors (weights in `dtype`: kFloat32, kFloat16 or kBFloat16)
// into `folder` atomically: the folder appears complete or not at all.
void save_hf_checkpoint(const LlamaModel& model, const std::string& folder, torch::ScalarType dtype,
                        bool replace_existing, const HfSaveOptions& options = {});

}  // namespace tessera::model
