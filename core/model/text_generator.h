#pragma once
// Autoregressive decoding: greedy at temperature 0, otherwise seeded sampling from the softmax at
// the given temperature (optionally restricted to the top-p nucleus). Stops at EOS or BOS (llama2.c
// models use BOS as the story delimiter), or after max_tokens.
#include <cstdint>
#include <functional>
#include <string>

#include "model/llama_model.h"
#include "text/tokenizer.h"
#include "util/stop_token.h"

namespace tessera::model {

struct GenerateOptions {
  std::int64_t max_tokens = 256;
  double temperature = 0.0;
  double top_p = 1.0;
  std::uint64_t seed = 42;
};

// `on_text` receives each decoded piece as soon as it is produced; returns the whole text.
std::string generate_text(const LlamaModel& model, const text::Tokenizer& tokenizer, const std::string& prompt,
                          const GenerateOptions& options, const std::function<void(const std::string&)>& on_text = {},
                          const StopToken& stop = StopToken());

}  // namespace tessera::model
