#include "methods/tesseraq_method.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "methods/awq_method.h"
#include "quant/group_quantizer.h"
#include "runtime/torch_runtime.h"
#include "util/error.h"

namespace tessera::methods {

using model::LinearKind;

torch::Tensor rectified_sigmoid(const torch::Tensor& x) { return torch::clamp(1.2 * torch::sigmoid(x) - 0.1, 0.0, 1.0); }

torch::Tensor rectified_sigmoid_inverse(const torch::Tensor& y) {
  // rsig^-1(y) = -ln(1.2 / (y + 0.1) - 1), finite on [0, 1] (about -2.398 .. 2.398); computed in
  // double so that rsig(rsig^-1(frac)) reproduces frac to fp32 precision.
  auto yd = torch::clamp(y.to(torch::kFloat64), 0.0, 1.0);
  return (-torch::log(1.2 / (yd + 0.1) - 1.0)).to(y.scalar_type());
}

TesseraqLinear TesseraqLinear::init(const torch::Tensor& w, const quant::WeightQuantSpec& spec) {
  torch::NoGradGuard no_grad;
  TesseraqLinear l;
  l.spec = spec;
  const auto in = w.size(1);
  l.group = spec.effective_group(in);
  const auto grid = quant::compute_grid(w, spec);
  l.scale = grid.scale;
  l.zero = grid.zero;
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

namespace {

// Per-token squared L2 norm of the error, summed over hidden, averaged over tokens and batch (4.8).
torch::Tensor block_loss(const torch::Tensor& out, const torch::Tensor& target) {
  return (out - target).pow(2).sum(-1).mean();
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
  model::BlockForwardOptions forward;
  forward.activation_bits = run.act_bits;
  const auto thresholds = run.par_thresholds();

  // Init (4.3 steps 3-4): AWQ scales, then the v1 clip search on the quantized-chain features.
  std::map<std::string, torch::Tensor> state;
  model::DecoderBlockWeights reference;
  {
    torch::NoGradGuard no_grad;
    if (run.tq_init == "awq") {
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
    } else {
      reference = w;
    }
  }

  // Frozen grid and learnable tensors (4.4, 4.6).
  std::map<LinearKind, TesseraqLinear> layers;
  for (auto kind : model::kAllLinears) {
    quant::check_finite(w.linear(kind), "block " + std::to_string(ctx.index) + " " + model::linear_name(kind));
    layers.emplace(kind, TesseraqLinear::init(w.linear(kind), spec));
  }
  auto soft_block = [&] {
    model::DecoderBlockWeights trial = w;
    for (auto& [kind, l] : layers) trial.linear(kind) = l.soft_weight();
    return trial;
  };
  // Loss on the first (up to) 4 calibration samples, logged before and after (4.5).
  const auto probe = std::min<std::int64_t>(n, 4);
  auto probe_loss = [&](const model::DecoderBlockWeights& weights) {
    torch::NoGradGuard no_grad;
    auto out = model::decoder_block_forward(c, weights, ctx.inputs_quant.narrow(0, 0, probe).to(ctx.device, torch::kFloat32),
                                            ctx.rope, forward);
    return block_loss(out, ctx.targets.narrow(0, 0, probe).to(ctx.device, torch::kFloat32)).item<double>();
  };
  log("init " + run.tq_init + ", loss before PAR " + std::to_string(probe_loss(soft_block())));

  // Samples per step: distinct within a step, drawn anew every step (randperm(n)[:bs]); seeded by
  // the run seed and the block index so that a resumed run redoes a block identically.
  std::seed_seq seq{static_cast<std::uint32_t>(run.seed), static_cast<std::uint32_t>(run.seed >> 32),
                    static_cast<std::uint32_t>(ctx.index), 0x7e55e7aU};
  std::mt19937_64 rng(seq);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  const auto bs = std::min(run.tq_batch, n);

  double lr = run.tq_lr, scale_lr = run.tq_scale_lr;
  std::int64_t global_step = 0;
  const auto total_steps = run.tq_steps * static_cast<std::int64_t>(thresholds.size());
  int bad_in_a_row = 0;
  torch::AutoGradMode enable_grad(true);  // the run loop holds a NoGradGuard
  for (std::size_t it = 0; it < thresholds.size(); ++it) {
    const double t = thresholds[it];
    for (auto& [kind, l] : layers) l.harden(t);

    std::vector<torch::Tensor> nus, vs;
    for (auto& [kind, l] : layers) {
      nus.push_back(l.nu);
      vs.push_back(l.v);
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(nus, std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(lr).weight_decay(0.0)));
    groups.emplace_back(
        vs, std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(scale_lr).weight_decay(run.tq_scale_wd)));
    torch::optim::Adam opt(groups, torch::optim::AdamOptions(lr));

    double loss_sum = 0;
    std::int64_t loss_count = 0;
    for (std::int64_t step = 0; step < run.tq_steps; ++step) {
      ctx.stop.throw_if_stopped();
      ++global_step;
      std::iota(perm.begin(), perm.end(), 0);
      for (std::int64_t i = 0; i < bs; ++i) {
        std::uniform_int_distribution<std::int64_t> pick(i, n - 1);
        std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(pick(rng))]);
      }
      auto idx = torch::tensor(std::vector<std::int64_t>(perm.begin(), perm.begin() + bs), torch::kInt64);
      auto x = ctx.inputs_quant.index_select(0, idx.to(ctx.inputs_quant.device())).to(ctx.device, torch::kFloat32);
      auto y = ctx.targets.index_select(0, idx.to(ctx.targets.device())).to(ctx.device, torch::kFloat32);

      opt.zero_grad();
      auto loss = block_loss(model::decoder_block_forward(c, soft_block(), x, ctx.rope, forward), y);
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        log("step " + std::to_string(global_step) + ": non-finite loss, step skipped");
        if (ctx.events) {
          pipeline::RunEvent e;
          e.kind = pipeline::RunEvent::Kind::StepSkipped;
          e.block = ctx.index;
          e.step = global_step;
          e.total_steps = total_steps;
          e.iteration = static_cast<std::int64_t>(it);
          e.message = "non-finite loss";
          e.value = lr;
          ctx.events->on_event(e);
        }
        if (++bad_in_a_row >= 3) {
          lr *= 0.5;
          scale_lr *= 0.5;
          for (auto& g : opt.param_groups()) {
            auto& o = static_cast<torch::optim::AdamOptions&>(g.options());
            o.lr(o.lr() * 0.5);
          }
          bad_in_a_row = 0;
          log("3 non-finite losses in a row: learning rates halved to " + std::to_string(lr) + " / " +
              std::to_string(scale_lr));
        }
        continue;
      }
      bad_in_a_row = 0;
      loss.backward();
      opt.step();
      loss_sum += value;
      ++loss_count;
      if (ctx.events && global_step % run.tq_log_every == 0) {
        pipeline::RunEvent e;
        e.kind = pipeline::RunEvent::Kind::StepLoss;
        e.block = ctx.index;
        e.step = global_step;
        e.total_steps = total_steps;
        e.iteration = static_cast<std::int64_t>(it);
        e.total_iterations = static_cast<std::int64_t>(thresholds.size());
        e.value = value;
        e.gpu_memory_bytes = runtime::gpu_memory_in_use_bytes(ctx.device);
        ctx.events->on_event(e);
      }
    }
    double hard = 0, total = 0;
    for (auto& [kind, l] : layers) {
      hard += static_cast<double>(l.hard.sum().item<std::int64_t>());
      total += static_cast<double>(l.hard.numel());
    }
    if (ctx.events) {
      pipeline::RunEvent e;
      e.kind = pipeline::RunEvent::Kind::HardFraction;
      e.block = ctx.index;
      e.step = global_step;
      e.total_steps = total_steps;
      e.iteration = static_cast<std::int64_t>(it);
      e.total_iterations = static_cast<std::int64_t>(thresholds.size());
      e.value = hard / total;
      e.before = 1.0 - t;
      ctx.events->on_event(e);
    }
    log("PAR " + std::to_string(it + 1) + "/" + std::to_string(thresholds.size()) + " soft fraction " +
        std::to_string(t) + ": hard " + std::to_string(100.0 * hard / total) + "%, mean loss " +
        (loss_count ? std::to_string(loss_sum / static_cast<double>(loss_count)) : std::string("n/a")));
  }

  // Finalisation (4.7): integer codes from the frozen grid, never re-derived from float weights.
  torch::NoGradGuard no_grad;
  pipeline::QuantizedBlock result;
  for (auto& [kind, l] : layers) {
    result.linears[kind] = l.finalize();
    state[std::string("tesseraq.dst.") + model::linear_name(kind)] = l.dst_factor().detach().cpu();
  }
  auto f32 = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat32) : t; };
  result.input_norm = f32(w.input_norm);
  result.post_attention_norm = f32(w.post_attention_norm);
  result.q_bias = f32(w.q_bias);
  result.k_bias = f32(w.k_bias);
  result.v_bias = f32(w.v_bias);
  result.method_state = std::move(state);
  result.float_reference = reference;
  log("loss after PAR " + std::to_string(probe_loss(result.dequantized(ctx.device, torch::kFloat32))));
  return result;
}

}  // namespace tessera::methods
