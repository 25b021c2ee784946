#pragma once
// Perplexity with the standard LLM protocol (that of the evaluation code of AWQ, arXiv 2306.00978,
// OmniQuant, arXiv 2308.13137, and TesseraQ, arXiv 2410.19103): the whole text is
// tokenized once with one BOS at the start, cut into non-overlapping windows of seq_len tokens
// (trailing tokens dropped), each window scored with fp32 cross-entropy of its seq_len-1
// next-token predictions, and ppl = exp(mean window loss).
#include <cstdint>
#include <functional>
#include <vector>

#include "model/llama_model.h"
#include "util/stop_token.h"

namespace tessera::eval {

struct PerplexityOptions {
  std::int64_t seq_len = 2048;
  std::int64_t batch_size = 1;  // windows per forward pass; does not change the result
};

struct PerplexityResult {
  double perplexity = 0;
  double mean_loss = 0;          // mean over windows of the per-window mean NLL (nats)
  std::int64_t text_tokens = 0;  // tokens of the whole text, BOS included
  std::int64_t windows = 0;
  std::int64_t seq_len = 0;
  double seconds = 0;            // model time (tokenization excluded)
  double tokens_per_second = 0;  // windows * seq_len / seconds
  std::vector<double> window_losses;
};

// Called after each batch of windows with (windows done, windows in all, ppl so far).
using PerplexityProgress = std::function<void(std::int64_t, std::int64_t, double)>;

// The default window: the smaller of 2048 and the model's context.
std::int64_t default_seq_len(const model::LlamaConfig& config);

PerplexityResult evaluate_perplexity(const model::LlamaModel& model, const std::vector<std::int32_t>& token_ids,
                                     const PerplexityOptions& options, const PerplexityProgress& progress = {},
                                     const StopToken& stop = StopToken());

}  // namespace tessera::eval
