#pragma once
// Reading GGUF llama files for evaluation (`tessera eval --model FILE.gguf`): F32, F16, Q4_1 and
// Q5_1 tensors decoded as llama.cpp does (y = q*d + m in fp32 for the block types), q/k rows
// permuted back to Hugging Face's rotate_half layout, and the vocabulary: a "llama" one as a
// llama2.c-style tokenizer (tokens and scores), which is what the run used when its tokenizer was a
// llama2.c one; a "gpt2" (byte-level BPE) one as the tokenizer.json it was written from
// (export/gguf_vocabulary.h).
#include <torch/torch.h>

#include <memory>
#include <string>

#include "export/gguf_file.h"
#include "model/llama_model.h"
#include "text/tokenizer.h"

namespace tessera::exporting {

// A tensor decoded to float32 [ne1, ne0] (or [ne0] for 1-D), in the file's row order.
torch::Tensor decode_gguf_tensor(const GgufTensorInfo& t);
// The stored codes of a block-type tensor (any type of export/gguf_blocks.h), uint8 [ne1, ne0].
torch::Tensor gguf_block_codes(const GgufTensorInfo& t);

model::LlamaConfig gguf_llama_config(const GgufFile& file);
// Verifies "tessera.tensor_data_sha256" when present (exports write it), then decodes everything.
model::LlamaModel load_gguf_model(const std::string& path);
std::unique_ptr<text::Tokenizer> load_gguf_tokenizer(const std::string& path);

}  // namespace tessera::exporting
