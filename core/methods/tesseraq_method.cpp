#include "methods/tesseraq_method.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "methods/awq_method.h"
#include "methods/omniquant_method.h"
#include "methods/training_step.h"
#include "pipeline/sample_batch.h"
#include "quant/lwc_quantizer.h"
#include "quant/group_quantizer.h"
#include "util/error.h"

namespace tessera::methods {

using model::LinearKind;


torch::Tensor rectified_sigmoid_inverse(const torch::Tensor& y) {
  // rsig^-1(y) = -ln(1.2 / (y + 0.1) - 1), finite on [0, 1] (about -2.398 .. 2.398); computed in
  // double so that rsig(rsig^-1(frac)) reproduces frac to fp32 precision.
  auto yd = torch::clamp(y.to(torch::kFloat64), 0.0, 1.0);
  return (-torch::log(1.2 / (yd + 0.1) - 1.0)).to(y.scalar_type());
}

TesseraqLinear TesseraqLinear::init(const torch::Tensor& w, const quant::WeightQuantSpec& spec,
                                    const std::optional<quant::GroupGrid>& grid) {
  torch::NoGradGuard no_grad;
  TesseraqLinear l;
  l.spec = spec;
  const auto in = w.size(1);
  l.group = spec.effective_group(in);
  const auto g = grid ? *grid : quant::compute_grid(w, spec);
  l.scale = g.scale.detach();
  l.zero = g.zero.detach();
  l.scale_cols = quant::expand_groups(l.scale, l.group, in);
  l.zero_cols = quant::expand_groups(l.zero, l.group, in);
  auto scaled = w.to(torch::kFloat32) / l.scale_cols;
  l.floor_codes = torch::floor(scaled);
  l.frac = torch::clamp(scaled - l.floor_codes, 0.0, 1.0);
  l.nu = rectified_sigmoid_inverse(l.frac).set_requires_grad(true);
  l.v = torch::zeros_like(l.scale).set_requires_grad(true);
  l.hard = torch::zeros(w.sizes(), w.options().dtype(torch::kBool));
  l.hard_value = torch::zeros_like(l.frac);
  return l;
}

torch::Tensor TesseraqLinear::rounding() const { return torch::where(hard, hard_value, rectified_sigmoid(nu)); }

torch::Tensor TesseraqLinear::soft_codes() const {
  const double qmax = std::pow(2.0, spec.bits) - 1.0;
  return torch::clamp(floor_codes + rounding() + zero_cols, 0.0, qmax);
}

torch::Tensor TesseraqLinear::dst_factor() const { return 2.0 * rectified_sigmoid(v); }

torch::Tensor TesseraqLinear::soft_weight() const {
  const auto delta = quant::expand_groups(dst_factor(), group, nu.size(1));
  return (soft_codes() - zero_cols) * scale_cols * delta;
}

torch::Tensor TesseraqLinear::fused_soft_weight(torch::ScalarType dtype) {
  constants_ = {floor_codes, scale_cols, zero_cols, hard, hard_value, group, std::pow(2.0, spec.bits) - 1.0, dtype};
  return methods::fused_soft_weight(nu, v, constants_);
}

double TesseraqLinear::harden(double soft_fraction) {
  torch::NoGradGuard no_grad;
  auto h = rectified_sigmoid(nu.detach());
  auto score = torch::where(hard, torch::full_like(h, 0.5), (h - 0.5).abs());
  // numpy.quantile's default (linear) on the sorted scores; exact for any size (no 2^24 limit).
  auto sorted = std::get<0>(score.flatten().sort());
  const auto n = sorted.numel();
  const double pos = soft_fraction * static_cast<double>(n - 1);
  const auto lo = static_cast<std::int64_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, n - 1);
  const double a = sorted[lo].item<double>(), b = sorted[hi].item<double>();
  const double tau = a + (b - a) * (pos - static_cast<double>(lo));
  auto harden_up = h > 0.5 + tau, harden_down = h < 0.5 - tau;
  auto newly = (harden_up | harden_down) & hard.logical_not();
  hard_value = torch::where(newly, harden_up.to(torch::kFloat32), hard_value);
  hard = hard | newly;
  return tau;
}

double TesseraqLinear::hard_fraction() const { return hard.to(torch::kFloat64).mean().item<double>(); }

torch::Tensor TesseraqLinear::final_codes() const {
  torch::NoGradGuard no_grad;
  const double qmax = std::pow(2.0, spec.bits) - 1.0;
  auto h = torch::where(hard, hard_value, (nu.detach() > 0).to(torch::kFloat32));
  return torch::clamp(floor_codes + h + zero_cols, 0.0, qmax).to(torch::kUInt8);
}

quant::QuantizedLinear TesseraqLinear::finalize() const {
  torch::NoGradGuard no_grad;
  quant::QuantizedLinear q;
  q.spec = spec;
  q.codes = final_codes();
  q.scale = (scale * dst_factor()).detach();
  q.zero = zero;
  return q;
}

torch::Tensor tesseraq_loss(const torch::Tensor& out, const torch::Tensor& target) {
  return (out.to(torch::kFloat32) - target.to(torch::kFloat32)).pow(2).sum(-1).mean();
}

TesseraqBlockTrainer::TesseraqBlockTrainer(const model::LlamaConfig& config, const model::DecoderBlockWeights& w,
                                           const std::map<LinearKind, quant::GroupGrid>& grids,
                                           const quant::WeightQuantSpec& spec, const TesseraqTrainerOptions& options,
                                           model::RopeTables rope)
    : config_(config), options_(options), rope_(std::move(rope)) {
  torch::NoGradGuard no_grad;
  for (auto kind : model::kAllLinears) {
    const auto grid = grids.find(kind);
    auto layer = TesseraqLinear::init(w.linear(kind), spec,
                                      grid == grids.end() ? std::nullopt : std::optional<quant::GroupGrid>(grid->second));
    layer.frac = torch::Tensor();  // only the init needs it
    layers_.emplace(kind, std::move(layer));
  }
  // Norms and biases: fp32 for soft_block(), in the compute dtype for training; the Linears come
  // from the rounding variables at every step.
  float_parts_ = w;
  for (auto kind : model::kAllLinears) float_parts_.linear(kind) = torch::Tensor();
  compute_block_ = float_parts_;
  for (auto* t : compute_block_.all_tensors())
    if (t->defined()) *t = t->to(options.compute_dtype);
  rope_.cos = rope_.cos.to(options.compute_dtype);
  rope_.sin = rope_.sin.to(options.compute_dtype);
}

double TesseraqBlockTrainer::begin_iteration(double soft_fraction, double lr_factor) {
  double hard = 0, total = 0;
  std::vector<torch::Tensor> nus, vs;
  for (auto& [kind, l] : layers_) {
    l.harden(soft_fraction);
    hard += static_cast<double>(l.hard.sum().item<std::int64_t>());
    total += static_cast<double>(l.hard.numel());
    nus.push_back(l.nu);
    vs.push_back(l.v);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(nus, std::make_unique<torch::optim::AdamOptions>(
                               torch::optim::AdamOptions(options_.lr * lr_factor).weight_decay(0.0)));
  groups.emplace_back(vs, std::make_unique<torch::optim::AdamOptions>(
                              torch::optim::AdamOptions(options_.scale_lr * lr_factor).weight_decay(options_.scale_wd)));
  optimizer_ = std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(options_.lr));
  return hard / total;
}

torch::Tensor TesseraqBlockTrainer::loss(const torch::Tensor& x, const torch::Tensor& y) {
  model::DecoderBlockWeights trial = compute_block_;
  for (auto& [kind, l] : layers_)
    trial.linear(kind) = options_.fused_soft_weight ? l.fused_soft_weight(options_.compute_dtype)
                                                    : l.soft_weight().to(options_.compute_dtype);
  model::BlockForwardOptions forward;
  forward.activation_bits = options_.activation_bits;
  return tesseraq_loss(model::decoder_block_forward(config_, trial, x.to(options_.compute_dtype), rope_, forward), y);
}

void TesseraqBlockTrainer::update(const torch::Tensor& loss) {
  optimizer_->zero_grad();
  loss.backward();
  optimizer_->step();
}

model::DecoderBlockWeights TesseraqBlockTrainer::soft_block() {
  torch::NoGradGuard no_grad;
  model::DecoderBlockWeights block = float_parts_;
  for (auto& [kind, l] : layers_) block.linear(kind) = l.soft_weight().detach();
  return block;
}

namespace {

torch::ScalarType train_dtype(const pipeline::RunConfig& run, const torch::Device& device) {
  return run.trains_in_bf16(device.is_cuda()) ? torch::kBFloat16 : torch::kFloat32;
}

}  // namespace

pipeline::QuantizedBlock TesseraqMethod::quantize_block(model::DecoderBlockWeights w, const pipeline::BlockContext& ctx) {
  const auto& c = *ctx.config;
  const auto& run = *ctx.run;
  const auto& spec = run.weight;
  const auto n = ctx.inputs_quant.size(0);
  const std::string prefix = "tesseraq block " + std::to_string(ctx.index) + ": ";
  auto log = [&](const std::string& m) {
    if (ctx.events) ctx.events->on_event(pipeline::RunEvent::log(ctx.index, prefix + m));
  };
  const auto thresholds = run.par_thresholds();

  // Init (4.3 steps 3-4, 4.9).
  std::map<std::string, torch::Tensor> state;
  std::map<LinearKind, quant::GroupGrid> grids;
  model::DecoderBlockWeights reference;  // after the init's transforms, before clipping (for statistics)
  if (run.tq_init == "awq") {
    // AWQ scales, then the v1 clip search on the quantized-chain features.
    torch::NoGradGuard no_grad;
    w = awq_apply_scales(std::move(w), ctx, state).weights;
    reference = w;
    if (run.awq_clip) {
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
  } else if (run.tq_init == "omniquant") {
    // OmniQuant's trained LWC logits give the frozen grid ("clip v2"); q and k keep their plain
    // min/max grid, as [TQ]'s loader does.
    auto trained = omniquant_train(std::move(w), ctx, state);
    w = std::move(trained.weights);
    reference = w;
    for (auto kind : model::kAllLinears)
      if (kind != LinearKind::Q && kind != LinearKind::K)
        grids[kind] = quant::lwc_grid(w.linear(kind), spec, trained.gamma[kind], trained.beta[kind]);
  }
  torch::NoGradGuard no_grad_outside_steps;
  if (run.tq_init == "none") reference = w;
  for (auto kind : model::kAllLinears)
    quant::check_finite(w.linear(kind), "block " + std::to_string(ctx.index) + " " + model::linear_name(kind));

  TesseraqTrainerOptions options;
  options.activation_bits = run.act_bits;
  options.lr = run.tq_lr;
  options.scale_lr = run.tq_scale_lr;
  options.scale_wd = run.tq_scale_wd;
  options.compute_dtype = train_dtype(run, ctx.device);
  TesseraqBlockTrainer trainer(c, w, grids, spec, options, ctx.rope);

  // Loss on the first (up to) 4 calibration samples, logged before and after (4.5).
  const auto probe = std::min<std::int64_t>(n, 4);
  auto probe_loss = [&](const model::DecoderBlockWeights& weights) {
    model::BlockForwardOptions forward;
    forward.activation_bits = run.act_bits;
    auto out = model::decoder_block_forward(c, weights, ctx.inputs_quant.narrow(0, 0, probe).to(ctx.device, torch::kFloat32),
                                            ctx.rope, forward);
    return tesseraq_loss(out, ctx.targets.narrow(0, 0, probe).to(ctx.device)).item<double>();
  };
  log("init " + run.tq_init + ", loss before PAR " + std::to_string(probe_loss(trainer.soft_block())) + ", matmuls in " +
      (options.compute_dtype == torch::kBFloat16 ? "bf16" : "fp32"));

  // Samples per step: distinct within a step, drawn anew every step (randperm(n)[:bs]); seeded by
  // the run seed and the block index so that a resumed run redoes a block identically.
  std::seed_seq seq{static_cast<std::uint32_t>(run.seed), static_cast<std::uint32_t>(run.seed >> 32),
                    static_cast<std::uint32_t>(ctx.index), 0x7e55e7aU};
  std::mt19937_64 rng(seq);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  const auto bs = std::min(run.tq_batch, n);

  NonFiniteGuard guard(ctx, "tesseraq");
  std::int64_t global_step = 0;
  const auto total_steps = run.tq_steps * static_cast<std::int64_t>(thresholds.size());
  const auto iterations = static_cast<std::int64_t>(thresholds.size());
  for (std::int64_t it = 0; it < iterations; ++it) {
    const double t = thresholds[static_cast<std::size_t>(it)];
    const double hard = trainer.begin_iteration(t, guard.lr_factor());
    double loss_sum = 0;
    std::int64_t loss_count = 0;
    {
      torch::AutoGradMode enable_grad(true);
      for (std::int64_t step = 0; step < run.tq_steps; ++step) {
        ctx.stop.throw_if_stopped();
        ++global_step;
        std::iota(perm.begin(), perm.end(), 0);
        for (std::int64_t i = 0; i < bs; ++i) {
          std::uniform_int_distribution<std::int64_t> pick(i, n - 1);
          std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(pick(rng))]);
        }
        const std::vector<std::int64_t> idx(perm.begin(), perm.begin() + bs);
        auto x = pipeline::gather_samples(ctx.inputs_quant, idx, ctx.device);
        auto y = pipeline::gather_samples(ctx.targets, idx, ctx.device);
        auto loss = trainer.loss(x, y);
        const double value = loss.item<double>();
        if (!guard.accept(value, trainer.optimizer(), global_step, it)) continue;
        trainer.update(loss);
        loss_sum += value;
        ++loss_count;
        report_step_loss(ctx, global_step, total_steps, it, iterations, value);
      }
    }
    if (ctx.events) {
      auto e = step_event(pipeline::RunEvent::Kind::HardFraction, ctx, global_step, total_steps, it, iterations);
      e.value = hard;
      e.before = 1.0 - t;
      ctx.events->on_event(e);
    }
    log("PAR " + std::to_string(it + 1) + "/" + std::to_string(iterations) + " soft fraction " + std::to_string(t) +
        ": hard " + std::to_string(100.0 * hard) + "%, mean loss " +
        (loss_count ? std::to_string(loss_sum / static_cast<double>(loss_count)) : std::string("n/a")));
  }

  // Finalisation (4.7): integer codes from the frozen grid, never re-derived from float weights.
  pipeline::QuantizedBlock result;
  for (auto& [kind, l] : trainer.layers()) {
    result.linears[kind] = l.finalize();
    state[std::string("tesseraq.dst.") + model::linear_name(kind)] = l.dst_factor().detach().cpu();
  }
  result.set_float_parts(w);
  result.float_reference = reference;
  result.method_state = std::move(state);
  log("loss after PAR " + std::to_string(probe_loss(result.dequantized(ctx.device, torch::kFloat32))));
  return result;
}

}  // namespace tessera::methods
