#include "methods/tesseraq_method.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "methods/awq_method.h"
#include "methods/omniquant_method.h"
#include "methods/sample_batch.h"
#include "methods/tesseraq_settings.h"
#include "methods/training_step.h"
#include "quant/group_quantizer.h"
#include "quant/lwc_quantizer.h"
#include "util/error.h"

namespace tessera::methods {

using model::LinearKind;

torch::Tensor tesseraq_loss(const torch::Tensor& out, const torch::Tensor& target) {
  return (out.to(torch::kFloat32) - target.to(torch::kFloat32)).pow(2).sum(-1).mean();
}

TesseraqBlockTrainer::TesseraqBlockTrainer(const model::LlamaConfig& config, const model::DecoderBlockWeights& w,
                                           const std::map<LinearKind, quant::GroupGrid>& grids,
                                           const quant::WeightQuantSpec& spec, const TesseraqTrainerOptions& options,
                                           model::RopeTables rope)
    : config_(config), options_(options), rope_(std::move(rope)) {
  torch::NoGradGuard no_grad;
  float_parts_ = w;
  for (auto kind : model::kAllLinears) {
    float_parts_.linear(kind) = torch::Tensor();
    const auto linear = quant::linear_grid(spec, w.linear(kind).size(1));
    if (!linear.learnable()) {  // F16 or IQ4_NL: a constant of the block, like the norms
      rounded_[kind] = quant::quantize_linear_rtn(w.linear(kind), spec, model::linear_name(kind));
      float_parts_.linear(kind) = rounded_[kind].dequantize();
      continue;
    }
    const auto grid = grids.find(kind);
    auto layer =
        TesseraqLinear::init(w.linear(kind), linear.spec,
                             grid == grids.end() ? std::nullopt : std::optional<quant::GroupGrid>(grid->second));
    layer.use_kernels = options.use_kernels;
    layers_.emplace(kind, std::move(layer));
  }
  if (layers_.empty()) throw Error("TesseraQ: no Linear of this block is on a uniform grid (each is F16 or IQ4_NL)");
  // Norms and biases (and unquantized Linears): fp32 for soft_block(), in the compute dtype for
  // training; the quantized Linears come from the rounding variables at every step.
  compute_block_ = float_parts_;
  for (auto* t : compute_block_.all_tensors())
    if (t->defined()) *t = t->to(options.compute_dtype);
  rope_.cos = rope_.cos.to(options.compute_dtype);
  rope_.sin = rope_.sin.to(options.compute_dtype);
}

double TesseraqBlockTrainer::begin_iteration(double soft_fraction, double lr_factor) {
  double hard = 0, total = 0;
  // Every layer's moments go before any layer hardens: the peak then holds no Adam state.
  for (auto& [kind, l] : layers_) l.reset_adam();
  for (auto& [kind, l] : layers_) {
    l.harden(soft_fraction);
    hard += static_cast<double>(l.codes.numel() - l.soft_count());
    total += static_cast<double>(l.codes.numel());
  }
  adam_.lr_nu = options_.lr * lr_factor;
  adam_.lr_v = options_.scale_lr * lr_factor;
  adam_.weight_decay_v = options_.scale_wd;
  adam_steps_ = torch::zeros({1}, layers_.begin()->second.codes.options().dtype(torch::kInt64));
  return hard / total;
}

void TesseraqBlockTrainer::scale_learning_rates(double factor) {
  adam_.lr_nu *= factor;
  adam_.lr_v *= factor;
}

bool TesseraqBlockTrainer::runs_kernels() const { return layers_.begin()->second.runs_kernels(); }

torch::Tensor TesseraqBlockTrainer::loss(const torch::Tensor& x, const torch::Tensor& y) {
  model::DecoderBlockWeights trial = compute_block_;
  for (auto& [kind, l] : layers_) {
    auto& w = weights_[kind];
    if (!w.defined())
      w = torch::empty({l.rows(), l.cols()}, l.codes.options().dtype(options_.compute_dtype)).set_requires_grad(true);
    l.write_weight(w);
    trial.linear(kind) = w;
  }
  model::BlockForwardOptions forward;
  forward.activation_bits = options_.activation_bits;
  forward.fused_kernels = options_.use_kernels;
  return tesseraq_loss(model::decoder_block_forward(config_, trial, x.to(options_.compute_dtype), rope_, forward), y);
}

void TesseraqBlockTrainer::update(const torch::Tensor& loss) {
  backward(loss);
  apply_adam(loss);
}

void TesseraqBlockTrainer::backward(const torch::Tensor& loss) {
  for (auto& [kind, w] : weights_) w.mutable_grad() = torch::Tensor();
  loss.backward();
}

void TesseraqBlockTrainer::apply_adam(const torch::Tensor& loss) {
  const auto coefficients = adam_step_coefficients(loss, adam_steps_, adam_, runs_kernels());
  for (auto& [kind, l] : layers_) l.adam_step(weights_.at(kind).grad(), adam_, coefficients);
}

model::DecoderBlockWeights TesseraqBlockTrainer::soft_block() {
  torch::NoGradGuard no_grad;
  model::DecoderBlockWeights block = float_parts_;
  for (auto& [kind, l] : layers_) block.linear(kind) = l.weight(torch::kFloat32);
  return block;
}

namespace {

torch::ScalarType train_dtype(const pipeline::RunConfig& run, const torch::Device& device) {
  return run.trains_in_bf16(device.is_cuda()) ? torch::kBFloat16 : torch::kFloat32;
}

}  // namespace

model::QuantizedBlock TesseraqMethod::quantize_block(model::DecoderBlockWeights w, const pipeline::BlockContext& ctx) {
  const auto& c = *ctx.config;
  const auto& run = *ctx.run;
  const auto& spec = run.weight;
  const auto n = ctx.inputs_quant.size(0);
  const std::string prefix = "tesseraq block " + std::to_string(ctx.index) + ": ";
  auto log = [&](const std::string& m) {
    if (ctx.events) ctx.events->on_event(rundir::RunEvent::log(ctx.index, prefix + m));
  };
  const auto thresholds = par_thresholds(run);
  const std::string& init = run.settings.text("tesseraq", "init");
  const std::int64_t steps = run.settings.integer("tesseraq", "steps");

  // Init: AWQ scales and clip, OmniQuant clip logits, or none (the official code's load_transform,
  // weight_clip, clip_version v1 / v2).
  std::map<std::string, torch::Tensor> state;
  std::map<LinearKind, quant::GroupGrid> grids;
  model::DecoderBlockWeights reference;  // after the init's transforms, before clipping (for statistics)
  if (init == "awq") {
    // AWQ scales, then the v1 clip search on the quantized-chain features.
    torch::NoGradGuard no_grad;
    w = awq_apply_scales(std::move(w), ctx, state).weights;
    reference = w;
    if (run.settings.flag("awq", "clip")) {
      // Record each Linear's input on the quantized chain (first 128 samples, as [TQ] keeps).
      const auto used = std::min<std::int64_t>(n, 128);
      std::map<LinearKind, std::vector<torch::Tensor>> recorded;
      model::LinearInputObserver observer = [&](LinearKind kind, const torch::Tensor& in) {
        if (kind == LinearKind::Q || kind == LinearKind::O || kind == LinearKind::Gate || kind == LinearKind::Down)
          recorded[kind].push_back(in.detach());
      };
      for (std::int64_t i = 0; i < used; i += run.batch_size) {
        const auto b = std::min(run.batch_size, used - i);
        model::decoder_block_forward(c, w, ctx.inputs_quant.narrow(0, i, b).to(ctx.device, torch::kFloat32), ctx.rope,
                                     &observer);
      }
      std::map<LinearKind, torch::Tensor> features;
      for (auto& [kind, parts] : recorded) features[kind] = torch::cat(parts, 0);
      recorded.clear();
      awq_clip_weights(w, features, ctx, state);
    }
  } else if (init == "omniquant") {
    // OmniQuant's trained LWC logits give the frozen grid ("clip v2"); q and k keep their plain
    // min/max grid, as [TQ]'s loader does.
    auto trained = omniquant_train(std::move(w), ctx, state);
    w = std::move(trained.weights);
    reference = w;
    for (auto kind : model::kAllLinears)
      if (kind != LinearKind::Q && kind != LinearKind::K) {
        const auto linear = quant::linear_grid(spec, w.linear(kind).size(1));
        if (linear.learnable())
          grids[kind] = quant::lwc_grid(w.linear(kind), linear.spec, trained.gamma[kind], trained.beta[kind]);
      }
  }
  torch::NoGradGuard no_grad_outside_steps;
  if (init == "none") reference = w;
  for (auto kind : model::kAllLinears)
    quant::check_finite(w.linear(kind), "block " + std::to_string(ctx.index) + " " + model::linear_name(kind));

  // The Linears PAR does not train (F16 and IQ4_NL, a GGUF target's fallback types) are rounded to
  // nearest from the init's weights (by the trainer when there is one: TesseraqBlockTrainer::rounded).
  auto finish = [&](model::QuantizedBlock result) {
    for (auto kind : model::kAllLinears)
      if (!result.linears.count(kind))
        result.linears[kind] = quant::quantize_linear_rtn(
            w.linear(kind), spec, "block " + std::to_string(ctx.index) + " " + model::linear_name(kind));
    result.set_float_parts(w);
    result.float_reference = reference;
    result.method_state = std::move(state);
    return result;
  };
  bool any_learnable = false;
  for (auto kind : model::kAllLinears)
    any_learnable = any_learnable || quant::linear_grid(spec, w.linear(kind).size(1)).learnable();
  if (!any_learnable) {
    log("init " + init + "; every Linear is on a fallback type PAR does not train (IQ4_NL, F16): rounded to nearest");
    return finish({});
  }

  TesseraqTrainerOptions options;
  options.activation_bits = run.act_bits;
  options.lr = run.settings.number("tesseraq", "lr");
  options.scale_lr = run.settings.number("tesseraq", "scale_lr");
  options.scale_wd = run.settings.number("tesseraq", "scale_wd");
  options.compute_dtype = train_dtype(run, ctx.device);
  TesseraqBlockTrainer trainer(c, w, grids, spec, options, ctx.rope);

  // Loss on the first (up to) 4 calibration samples, logged before and after (as the official code
  // does).
  const auto probe = std::min<std::int64_t>(n, 4);
  auto probe_loss = [&](const model::DecoderBlockWeights& weights) {
    model::BlockForwardOptions forward;
    forward.activation_bits = run.act_bits;
    auto out = model::decoder_block_forward(
        c, weights, ctx.inputs_quant.narrow(0, 0, probe).to(ctx.device, torch::kFloat32), ctx.rope, forward);
    return tesseraq_loss(out, ctx.targets.narrow(0, 0, probe).to(ctx.device)).item<double>();
  };
  log("init " + init + ", loss before PAR " + std::to_string(probe_loss(trainer.soft_block())) + ", matmuls in " +
      (options.compute_dtype == torch::kBFloat16 ? "bf16" : "fp32"));

  // Samples per step: distinct within a step, drawn anew every step (randperm(n)[:bs]); seeded by
  // the run seed and the block index so that a resumed run redoes a block identically.
  std::seed_seq seq{static_cast<std::uint32_t>(run.seed), static_cast<std::uint32_t>(run.seed >> 32),
                    static_cast<std::uint32_t>(ctx.index), 0x7e55e7aU};
  std::mt19937_64 rng(seq);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  const auto bs = std::min(run.settings.integer("tesseraq", "batch"), n);

  auto draw_batch = [&] {
    std::iota(perm.begin(), perm.end(), 0);
    for (std::int64_t i = 0; i < bs; ++i) {
      std::uniform_int_distribution<std::int64_t> pick(i, n - 1);
      std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(pick(rng))]);
    }
    return std::vector<std::int64_t>(perm.begin(), perm.begin() + bs);
  };
  // The next batch is copied while the current step computes.
  SamplePrefetcher batches({ctx.inputs_quant, ctx.targets}, ctx.device);

  NonFiniteGuard guard(ctx, "tesseraq");
  std::int64_t global_step = 0;
  const auto total_steps = steps * static_cast<std::int64_t>(thresholds.size());
  const auto iterations = static_cast<std::int64_t>(thresholds.size());
  const auto read_every = std::max<std::int64_t>(1, run.settings.integer("tesseraq", "log_every"));
  if (steps > 0) batches.prefetch(draw_batch());
  for (std::int64_t it = 0; it < iterations; ++it) {
    const double t = thresholds[static_cast<std::size_t>(it)];
    const double hard = trainer.begin_iteration(t, guard.lr_factor());
    double loss_sum = 0;
    std::int64_t loss_count = 0;
    // Losses stay on the device and are read every read_every steps (one wait instead of one per
    // step); the trainer has already skipped the update of a non-finite one.
    std::vector<torch::Tensor> unread;
    std::vector<std::int64_t> unread_steps;
    auto read_losses = [&] {
      if (unread.empty()) return;
      const auto values = torch::stack(unread).to(torch::kCPU, torch::kFloat64);
      const auto* v = values.data_ptr<double>();
      for (std::size_t i = 0; i < unread.size(); ++i) {
        if (!guard.accept(
                v[i], [&](double f) { trainer.scale_learning_rates(f); }, unread_steps[i], it))
          continue;
        loss_sum += v[i];
        ++loss_count;
        report_step_loss(ctx, unread_steps[i], total_steps, it, iterations, v[i]);
      }
      unread.clear();
      unread_steps.clear();
    };
    {
      torch::AutoGradMode enable_grad(true);
      for (std::int64_t step = 0; step < steps; ++step) {
        ctx.stop.throw_if_stopped();
        ++global_step;
        const auto xy = batches.take();
        if (step + 1 < steps || it + 1 < iterations) batches.prefetch(draw_batch());
        auto loss = trainer.loss(xy[0], xy[1]);
        trainer.update(loss);
        unread.push_back(loss.detach());
        unread_steps.push_back(global_step);
        if (static_cast<std::int64_t>(unread.size()) >= read_every) read_losses();
      }
      read_losses();
    }
    if (ctx.events) {
      auto e = step_event(rundir::RunEvent::Kind::HardFraction, ctx, global_step, total_steps, it, iterations);
      e.hard_fraction = hard;
      e.target_hard_fraction = 1.0 - t;
      ctx.events->on_event(e);
    }
    log("PAR " + std::to_string(it + 1) + "/" + std::to_string(iterations) + " soft fraction " + std::to_string(t) +
        ": hard " + std::to_string(100.0 * hard) + "%, mean loss " +
        (loss_count ? std::to_string(loss_sum / static_cast<double>(loss_count)) : std::string("n/a")));
  }

  // Finalisation: integer codes from the frozen grid, never re-derived from float weights.
  // Deviation from the official code, which merges 0.5 s (h - 1[frac > 0.5]) into the float weight
  // and rounds again: that can flip codes near a rounding boundary and its real-quant export
  // recomputes (s, z).
  model::QuantizedBlock result;
  result.linears = trainer.rounded();
  for (auto& [kind, l] : trainer.layers()) {
    result.linears[kind] = l.finalize();
    state[std::string("tesseraq.dst.") + model::linear_name(kind)] = l.dst_factor().detach().cpu();
  }
  result = finish(std::move(result));
  log("loss after PAR " + std::to_string(probe_loss(result.dequantized(ctx.device, torch::kFloat32))));
  return result;
}

std::unique_ptr<pipeline::BlockMethod> make_tesseraq_method() { return std::make_unique<TesseraqMethod>(); }

}  // namespace tessera::methods
