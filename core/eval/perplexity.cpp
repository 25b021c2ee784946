#include "eval/perplexity.h"

#include <chrono>
#include <cmath>

#include "runtime/torch_runtime.h"
#include "util/error.h"

namespace tessera::eval {

std::int64_t default_seq_len(const model::LlamaConfig& config) {
  return std::min<std::int64_t>(2048, config.max_position_embeddings);
}

PerplexityResult evaluate_perplexity(const model::LlamaModel& model,
                                     const std::vector<std::int32_t>& token_ids,
                                     const PerplexityOptions& options,
                                     const PerplexityProgress& progress, const StopToken& stop) {
  const std::int64_t seq = options.seq_len;
  if (seq < 2) throw Error("--seq-len must be at least 2 (got " + std::to_string(seq) + ")");
  if (seq > model.config().max_position_embeddings)
    throw Error("--seq-len " + std::to_string(seq) + " exceeds the model's context of " +
                std::to_string(model.config().max_position_embeddings) + " tokens");
  if (options.batch_size < 1) throw Error("--batch must be at least 1");
  const auto n_tokens = static_cast<std::int64_t>(token_ids.size());
  const std::int64_t windows = n_tokens / seq;
  if (windows == 0)
    throw Error("the text has " + std::to_string(n_tokens) + " tokens, fewer than one window of " +
                std::to_string(seq) + "; use a longer text or a smaller --seq-len");

  torch::NoGradGuard no_grad;
  PerplexityResult result;
  result.text_tokens = n_tokens;
  result.windows = windows;
  result.seq_len = seq;
  auto all = torch::from_blob(const_cast<std::int32_t*>(token_ids.data()), {windows * seq},
                              torch::kInt32)
                 .to(torch::kInt64)
                 .view({windows, seq});
  const auto start = std::chrono::steady_clock::now();
  double loss_sum = 0;
  for (std::int64_t first = 0; first < windows; first += options.batch_size) {
    stop.throw_if_stopped();
    const auto count = std::min(options.batch_size, windows - first);
    auto batch = all.narrow(0, first, count).to(model.device());
    auto logits = model.forward(batch).to(torch::kFloat32);
    auto predictions = logits.narrow(1, 0, seq - 1).reshape({-1, logits.size(-1)});
    auto targets = batch.narrow(1, 1, seq - 1).reshape({-1});
    auto losses = torch::nll_loss(torch::log_softmax(predictions, -1), targets, {},
                                  at::Reduction::None)
                      .view({count, seq - 1})
                      .mean(1)
                      .to(torch::kFloat64)
                      .cpu();
    for (std::int64_t i = 0; i < count; ++i) {
      const double loss = losses[i].item<double>();
      if (!std::isfinite(loss))
        throw Error("window " + std::to_string(first + i) +
                    " has a non-finite loss: the model's weights or dtype overflow");
      result.window_losses.push_back(loss);
      loss_sum += loss;
    }
    if (progress) {
      const auto done = first + count;
      progress(done, windows, std::exp(loss_sum / static_cast<double>(done)));
    }
  }
  runtime::synchronize(model.device());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.mean_loss = loss_sum / static_cast<double>(windows);
  result.perplexity = std::exp(result.mean_loss);
  result.tokens_per_second = static_cast<double>(windows * seq) / std::max(result.seconds, 1e-9);
  return result;
}

}  // namespace tessera::eval
