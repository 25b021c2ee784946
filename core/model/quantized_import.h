#pragma once
// Loading exported quantized checkpoints for evaluation: GPTQ (v1/v2) and AWQ-GEMM folders are
// dequantized on load with their readers' conventions ((q - z) * s in fp32, v1 adding 1 to the
// stored zeros), so `tessera eval --model EXPORT` scores any export with the same protocol as a run.
#include <string>

#include "model/llama_model.h"

namespace tessera::model {

// True when `folder`'s config.json has a GPTQ or AWQ "quantization_config".
bool is_packed_checkpoint(const std::string& folder);
// Verifies the recorded tensor digests (when present), then dequantizes every packed Linear.
model::LlamaModel load_packed_checkpoint(const std::string& folder);

}  // namespace tessera::model
