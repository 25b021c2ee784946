#include "model/text_generator.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "util/error.h"

namespace tessera::model {
namespace {

std::int32_t sample(const torch::Tensor& logits, const GenerateOptions& options, std::mt19937_64& rng) {
  if (options.temperature <= 0) return static_cast<std::int32_t>(logits.argmax().item<std::int64_t>());
  auto probs = torch::softmax(logits.to(torch::kFloat64) / options.temperature, -1).cpu().contiguous();
  const double* p = probs.data_ptr<double>();
  const auto n = probs.numel();
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return p[a] > p[b]; });
  // Keep the smallest prefix whose mass reaches top_p, then draw within it.
  double mass = 0;
  std::size_t keep = 0;
  while (keep < order.size() && (keep == 0 || mass < options.top_p)) mass += p[order[keep++]];
  std::uniform_real_distribution<double> uniform(0.0, mass);
  double r = uniform(rng), acc = 0;
  for (std::size_t i = 0; i < keep; ++i) {
    acc += p[order[i]];
    if (r < acc) return static_cast<std::int32_t>(order[i]);
  }
  return static_cast<std::int32_t>(order[keep - 1]);
}

}  // namespace

std::string generate_text(const LlamaModel& model, const text::Tokenizer& tokenizer, const std::string& prompt,
                          const GenerateOptions& options, const std::function<void(const std::string&)>& on_text,
                          const StopToken& stop) {
  if (options.max_tokens < 1) throw Error("--max-tokens must be at least 1");
  // !(x >= a) rather than x < a, so that NaN is refused too.
  if (!(options.top_p > 0 && options.top_p <= 1)) throw Error("--top-p must be in (0, 1]");
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature))
    throw Error("--temperature must be a finite number >= 0");
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(options.seed);
  std::vector<std::int32_t> ids = tokenizer.encode(prompt, true, false);
  if (ids.empty()) throw Error("the prompt is empty and the tokenizer adds no BOS token: nothing to continue from");
  const auto context = model.config().max_position_embeddings;
  if (static_cast<std::int64_t>(ids.size()) >= context)
    throw Error("the prompt has " + std::to_string(ids.size()) + " tokens, the model's context is " +
                std::to_string(context) + ": no room to generate");
  std::string out;
  std::int32_t previous = ids.back();
  for (std::int64_t step = 0; step < options.max_tokens; ++step) {
    stop.throw_if_stopped();
    if (static_cast<std::int64_t>(ids.size()) >= context) break;
    auto input =
        torch::from_blob(ids.data(), {1, static_cast<std::int64_t>(ids.size())}, torch::kInt32).to(torch::kInt64);
    auto logits = model.forward(input).select(1, input.size(1) - 1).squeeze(0).to(torch::kFloat32);
    const auto next = sample(logits, options, rng);
    if (next == tokenizer.eos_id() || next == tokenizer.bos_id()) break;
    const std::string piece = tokenizer.decode_token(previous, next);
    out += piece;
    if (on_text) on_text(piece);
    ids.push_back(next);
    previous = next;
  }
  return out;
}

}  // namespace tessera::model
