#pragma once
// What the gradient-based methods (OmniQuant, TesseraQ) share around an optimisation step: the
// handling of non-finite losses and the StepLoss events for the GUI.
#include <torch/torch.h>

#include <functional>
#include <string>

#include "pipeline/block_method.h"

namespace tessera::methods {

// A non-finite loss never stops a run: the step is skipped (no backward, no update) and reported;
// after 3 in a row the learning rates of the optimiser are halved, and stay halved for the
// optimisers that later iterations create (multiply their rates by lr_factor()).
class NonFiniteGuard {
 public:
  NonFiniteGuard(const pipeline::BlockContext& ctx, std::string method) : ctx_(ctx), method_(std::move(method)) {}
  // True when `loss` is finite and the step may go on.
  bool accept(double loss, torch::optim::Optimizer& optimizer, std::int64_t step, std::int64_t iteration);
  // The same for optimisers of their own: scale_rates(f) multiplies their learning rates by f.
  bool accept(double loss, const std::function<void(double)>& scale_rates, std::int64_t step, std::int64_t iteration);
  double lr_factor() const { return lr_factor_; }

 private:
  const pipeline::BlockContext& ctx_;
  std::string method_;
  int in_a_row_ = 0;
  double lr_factor_ = 1.0;
};

// An event of block ctx.index at an optimisation step (StepLoss, StepSkipped, HardFraction).
rundir::RunEvent step_event(rundir::RunEvent::Kind kind, const pipeline::BlockContext& ctx, std::int64_t step,
                            std::int64_t total_steps, std::int64_t iteration, std::int64_t total_iterations);

// A StepLoss event (with the GPU memory in use) when step is a multiple of the run's tesseraq.log_every.
void report_step_loss(const pipeline::BlockContext& ctx, std::int64_t step, std::int64_t total_steps,
                      std::int64_t iteration, std::int64_t total_iterations, double loss);

// Multiplies the learning rate of every parameter group of an Adam or AdamW optimiser.
void scale_learning_rates(torch::optim::Optimizer& optimizer, double factor);

}  // namespace tessera::methods
