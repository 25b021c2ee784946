#include "methods/training_step.h"

#include <cmath>

#include "runtime/torch_runtime.h"
#include "util/log.h"

namespace tessera::methods {

void scale_learning_rates(torch::optim::Optimizer& optimizer, double factor) {
  for (auto& group : optimizer.param_groups()) {
    if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&group.options())) adam->lr(adam->lr() * factor);
    if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&group.options())) adamw->lr(adamw->lr() * factor);
  }
}

bool NonFiniteGuard::accept(double loss, torch::optim::Optimizer& optimizer, std::int64_t step,
                            std::int64_t iteration) {
  return accept(
      loss, [&](double factor) { scale_learning_rates(optimizer, factor); }, step, iteration);
}

bool NonFiniteGuard::accept(double loss, const std::function<void(double)>& scale_rates, std::int64_t step,
                            std::int64_t iteration) {
  if (std::isfinite(loss)) {
    in_a_row_ = 0;
    return true;
  }
  const std::string where = method_ + " block " + std::to_string(ctx_.index) + " step " + std::to_string(step);
  logger()->warn("{}: non-finite loss, step skipped", where);
  if (++in_a_row_ >= 3) {
    in_a_row_ = 0;
    lr_factor_ *= 0.5;
    scale_rates(0.5);
    logger()->warn("{}: 3 non-finite losses in a row, learning rates halved (now x{})", where, lr_factor_);
  }
  if (ctx_.events) {
    auto e = step_event(rundir::RunEvent::Kind::StepSkipped, ctx_, step, 0, iteration, 0);
    e.lr_factor = lr_factor_;
    e.message = where + ": non-finite loss, step skipped; learning rates x" + std::to_string(lr_factor_);
    ctx_.events->on_event(e);
  }
  return false;
}

rundir::RunEvent step_event(rundir::RunEvent::Kind kind, const pipeline::BlockContext& ctx, std::int64_t step,
                            std::int64_t total_steps, std::int64_t iteration, std::int64_t total_iterations) {
  rundir::RunEvent e;
  e.kind = kind;
  e.block = ctx.index;
  e.step = step;
  e.total_steps = total_steps;
  e.iteration = iteration;
  e.total_iterations = total_iterations;
  return e;
}

void report_step_loss(const pipeline::BlockContext& ctx, std::int64_t step, std::int64_t total_steps,
                      std::int64_t iteration, std::int64_t total_iterations, double loss) {
  const auto every = std::max<std::int64_t>(1, ctx.run->settings.integer("tesseraq", "log_every"));
  if (!ctx.events || step % every != 0) return;
  auto e = step_event(rundir::RunEvent::Kind::StepLoss, ctx, step, total_steps, iteration, total_iterations);
  e.train_loss = loss;
  e.gpu_memory_bytes = runtime::gpu_memory_in_use_bytes(ctx.device);
  ctx.events->on_event(e);
}

}  // namespace tessera::methods
