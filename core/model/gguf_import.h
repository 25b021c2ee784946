#pragma once
// Reading GGUF llama files for evaluation (`tessera eval --model FILE.gguf`): F32, F16, Q4_1 and
// Q5_1 tensors decoded as llama.cpp does (y = q*d + m in fp32 for the block types), q/k rows
// permuted back to Hugging Face's rotate_half layout. The file's vocabulary is read by
// text/gguf_vocabulary.h (load_gguf_tokenizer); the container and block codecs are formats/'s.
#include <torch/torch.h>

#include <string>

#include "formats/gguf_file.h"
#include "model/llama_model.h"

namespace tessera::model {

// A tensor decoded to float32 [ne1, ne0] (or [ne0] for 1-D), in the file's row order.
torch::Tensor decode_gguf_tensor(const formats::GgufTensorInfo& t);
// The stored codes of a block-type tensor (any type of formats/gguf_blocks.h), uint8 [ne1, ne0].
torch::Tensor gguf_block_codes(const formats::GgufTensorInfo& t);

model::LlamaConfig gguf_llama_config(const formats::GgufFile& file);
// Verifies "tessera.tensor_data_sha256" when present (exports write it), then decodes everything.
model::LlamaModel load_gguf_model(const std::string& path);

}  // namespace tessera::model
