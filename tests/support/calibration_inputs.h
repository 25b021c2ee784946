#pragma once
// What a run feeds block 0: seeded calibration windows of `corpus`, tokenized with the model's own
// tokenizer and embedded, and the block's context. For tests that drive one block directly.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "pipeline/block_method.h"
#include "text/calibration.h"
#include "text/tokenizer_loader.h"

namespace tessera_test {

inline torch::Tensor calibration_inputs(const tessera::model::LlamaModel& model, const std::string& model_path,
                                        const std::string& corpus, std::int64_t samples, std::int64_t seq_len) {
  using namespace tessera;
  const auto tok = text::load_tokenizer(text::find_tokenizer_for_model(model_path));
  const auto calib = text::sample_calibration(*tok, corpus, samples, seq_len, /*seed=*/42);
  const auto ids = torch::tensor(std::vector<std::int64_t>(calib.tokens.begin(), calib.tokens.end()));
  return model.embed(ids.view({samples, seq_len}));
}

// Block 0's context with `inputs` on both chains; tests set what they change (targets, events, a
// poisoned quantized chain).
inline tessera::pipeline::BlockContext block0_context(const tessera::model::LlamaModel& model,
                                                      const tessera::pipeline::RunConfig& run,
                                                      const torch::Tensor& inputs) {
  tessera::pipeline::BlockContext ctx;
  ctx.config = &model.config();
  ctx.run = &run;
  ctx.rope = model.rope(inputs.size(1));
  ctx.inputs_fp = inputs;
  ctx.inputs_quant = inputs;
  return ctx;
}

}  // namespace tessera_test
