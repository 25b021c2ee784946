#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "runtime/torch_runtime.h"
#include "util/error.h"

namespace tessera::eval {

std::int64_t default_seq_len(const model::LlamaConfig& config) {
  return std::min<std::int64_t>(2048, config.max_position_embeddings);
}

namespace {

// The mean NLL of each window in rows [first, first + count) of `all`, in one forward pass.
std::vector<double> window_losses(const model::LlamaModel& model, const torch::Tensor& all, std::int64_t first,
                                  std::int64_t count) {
  torch::NoGradGuard no_grad;
  const auto seq = all.size(1);
  auto batch = all.narrow(0, first, count).to(model.device());
  auto logits = model.forward(batch).to(torch::kFloat32);
  auto predictions = logits.narrow(1, 0, seq - 1).reshape({-1, logits.size(-1)});
  auto targets = batch.narrow(1, 1, seq - 1).reshape({-1});
  auto losses = torch::nll_loss(torch::log_softmax(predictions, -1), targets, {}, at::Reduction::None)
                    .view({count, seq - 1})
                    .mean(1)
                    .to(torch::kFloat64)
                    .cpu();
  std::vector<double> out(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    out[static_cast<std::size_t>(i)] = losses[i].item<double>();
    if (!std::isfinite(out[static_cast<std::size_t>(i)]))
      throw Error("window " + std::to_string(first + i) +
                  " has a non-finite loss: the model's weights or dtype overflow");
  }
  return out;
}

}  // namespace

PerplexityResult evaluate_perplexity(const model::LlamaModel& model, const std::vector<std::int32_t>& token_ids,
                                     const PerplexityOptions& options, const PerplexityProgress& progress,
                                     const StopToken& stop) {
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

  PerplexityResult result;
  result.text_tokens = n_tokens;
  result.windows = windows;
  result.seq_len = seq;
  result.window_losses.assign(static_cast<std::size_t>(windows), 0.0);
  auto all = torch::from_blob(const_cast<std::int32_t*>(token_ids.data()), {windows * seq}, torch::kInt32)
                 .to(torch::kInt64)
                 .view({windows, seq});
  const auto batches = (windows + options.batch_size - 1) / options.batch_size;
  const auto start = std::chrono::steady_clock::now();
  // Batch b scores windows [b * batch_size, ...) into result.window_losses; returns how many.
  auto score_batch = [&](std::int64_t b) {
    const auto first = b * options.batch_size;
    const auto count = std::min(options.batch_size, windows - first);
    const auto losses = window_losses(model, all, first, count);
    std::copy(losses.begin(), losses.end(), result.window_losses.begin() + first);
    return count;
  };
  const int threads = torch::get_num_threads();
  if (!model.device().is_cpu() || threads <= 1 || batches <= 1) {
    double loss_sum = 0;
    for (std::int64_t b = 0, done = 0; b < batches; ++b) {
      stop.throw_if_stopped();
      const auto first = done;
      done += score_batch(b);
      for (auto i = first; i < done; ++i) loss_sum += result.window_losses[static_cast<std::size_t>(i)];
      if (progress) progress(done, windows, std::exp(loss_sum / static_cast<double>(done)));
    }
  } else {
    // On the CPU, batches go to `threads` threads with one intra-op thread each: the operations of
    // a small model are too small to split (stories260K: 2 intra-op threads were about 2x slower
    // than one on 2 cores), whole windows are not. Each window's loss is the same either way.
    const runtime::ScopedIntraOpThreads one_each(1);
    std::mutex mutex;
    std::condition_variable changed;
    std::int64_t next = 0, done = 0;
    double loss_sum = 0;
    int running = threads;
    std::exception_ptr error;
    auto work = [&] {
      for (;;) {
        std::int64_t b = 0;
        {
          const std::lock_guard<std::mutex> lock(mutex);
          if (error || next >= batches) break;
          b = next++;
        }
        try {
          stop.throw_if_stopped();
          const auto first = b * options.batch_size;
          const auto count = score_batch(b);
          const std::lock_guard<std::mutex> lock(mutex);
          for (auto i = first; i < first + count; ++i) loss_sum += result.window_losses[static_cast<std::size_t>(i)];
          done += count;
        } catch (...) {
          const std::lock_guard<std::mutex> lock(mutex);
          if (!error) error = std::current_exception();
        }
        changed.notify_one();
      }
      const std::lock_guard<std::mutex> lock(mutex);
      --running;
      changed.notify_one();
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(work);
    {
      // Progress is reported from the calling thread, as on the sequential path.
      std::unique_lock<std::mutex> lock(mutex);
      std::int64_t reported = 0;
      for (;;) {
        changed.wait(lock, [&] { return running == 0 || done != reported; });
        if (done == reported) break;  // and no thread runs
        reported = done;
        if (!progress || error) continue;
        const double ppl = std::exp(loss_sum / static_cast<double>(done));
        lock.unlock();
        try {
          progress(reported, windows, ppl);
        } catch (...) {  // the threads stop at their next batch; rethrown below
          lock.lock();
          if (!error) error = std::current_exception();
          continue;
        }
        lock.lock();
      }
    }
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
  }
  double loss_sum = 0;  // in window order, so the result does not depend on the threads
  for (const double l : result.window_losses) loss_sum += l;
  runtime::synchronize(model.device());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.mean_loss = loss_sum / static_cast<double>(windows);
  result.perplexity = std::exp(result.mean_loss);
  result.tokens_per_second = static_cast<double>(windows * seq) / std::max(result.seconds, 1e-9);
  return result;
}

}  // namespace tessera::eval
