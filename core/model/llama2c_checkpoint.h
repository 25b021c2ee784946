#pragma once
// llama2.c "legacy" checkpoints (run.c's format): a header of 7 int32 (dim, hidden_dim, n_layers,
// n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the classifier is stored
// separately), then fp32 weights in llama2.c order.
#include <string>

#include "model/llama_model.h"

namespace tessera::model {

LlamaConfig read_llama2c_config(const std::string& path);
LlamaModel load_llama2c_checkpoint(const std::string& path);

}  // namespace tessera::model
