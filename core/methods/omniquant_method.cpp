#include "methods/omniquant_method.h"

#include "methods/omniquant_settings.h"
#include "methods/training_step.h"
#include "quant/group_quantizer.h"
#include "quant/lwc_quantizer.h"

namespace tessera::methods {

using model::LinearKind;

void LetScales::truncate() {
  torch::NoGradGuard no_grad;
  for (auto* s : {&s1, &s2, &s3, &s4}) s->copy_(torch::where(s->abs() < 1e-2, torch::sign(*s) * 1e-2, *s));
}

model::DecoderBlockWeights LetScales::apply(const model::DecoderBlockWeights& w, const model::LlamaConfig& c) const {
  model::DecoderBlockWeights t = w;
  t.input_norm = w.input_norm / s1;
  t.q_proj = w.q_proj * s1.unsqueeze(0);
  t.k_proj = w.k_proj * s1.unsqueeze(0);
  t.v_proj = w.v_proj * s1.unsqueeze(0);
  // s4: per RoPE pair (rotate_half layout: j and j + head_dim/2), expanded to q/k rows.
  auto pair = s4.view({c.num_heads, c.head_dim / 2});
  auto rows = torch::cat({pair, pair}, 1).reshape({-1, 1});
  t.q_proj = t.q_proj / rows;
  t.k_proj = t.k_proj * rows;
  if (w.q_bias.defined()) t.q_bias = w.q_bias / rows.flatten();
  if (w.k_bias.defined()) t.k_bias = w.k_bias * rows.flatten();
  t.v_proj = t.v_proj / s2.unsqueeze(1);
  if (w.v_bias.defined()) t.v_bias = w.v_bias / s2;
  t.o_proj = w.o_proj * s2.unsqueeze(0);
  t.post_attention_norm = w.post_attention_norm / s3;
  t.gate_proj = w.gate_proj * s3.unsqueeze(0);
  t.up_proj = w.up_proj * s3.unsqueeze(0);
  return t;
}

namespace {

// s = max(a^alpha / w^(1 - alpha), 1e-5) with a the per-channel max |activation| and w the
// per-input-channel max |weight| (OmniQuant's LET init, arXiv 2308.13137; a as its
// generate_act_scale_shift.py records it).
torch::Tensor let_init(const torch::Tensor& act_max, const torch::Tensor& weight, double alpha) {
  auto w_max = std::get<0>(weight.abs().max(0)).clamp_min(1e-5);
  return torch::clamp_min(act_max.clamp_min(1e-5).pow(alpha) / w_max.pow(1.0 - alpha), 1e-5);
}

}  // namespace

OmniquantResult omniquant_train(model::DecoderBlockWeights w, const pipeline::BlockContext& ctx,
                                std::map<std::string, torch::Tensor>& state) {
  const auto& c = *ctx.config;
  const auto& run = *ctx.run;
  const auto& spec = run.weight;
  const auto n = ctx.inputs_quant.size(0);
  auto log = [&](const std::string& m) {
    if (ctx.events)
      ctx.events->on_event(rundir::RunEvent::log(ctx.index, "omniquant block " + std::to_string(ctx.index) + ": " + m));
  };
  model::BlockForwardOptions forward;
  forward.activation_bits = run.act_bits;

  bool use_let = omniquant_let(run);
  if (use_let && c.num_kv_heads != c.num_heads) {
    use_let = false;
    log("LET skipped: the model uses grouped-query attention (" + std::to_string(c.num_kv_heads) + " KV heads for " +
        std::to_string(c.num_heads) + " heads); like [OQ], Tessera's LET supports multi-head attention only");
  }
  LetScales let;
  if (use_let) {
    // Channel maxima of the Linear inputs on the FP chain ([OQ] generate_act_scale_shift.py).
    torch::NoGradGuard no_grad;
    std::map<LinearKind, torch::Tensor> act_max;
    model::LinearInputObserver observer = [&](LinearKind kind, const torch::Tensor& x) {
      if (kind != LinearKind::Q && kind != LinearKind::O && kind != LinearKind::Up) return;
      auto m = std::get<0>(x.detach().abs().reshape({-1, x.size(-1)}).max(0));
      act_max[kind] = act_max.count(kind) ? torch::max(act_max[kind], m) : m;
    };
    for (std::int64_t i = 0; i < n; i += run.batch_size)
      model::decoder_block_forward(
          c, w, ctx.inputs_fp.narrow(0, i, std::min(run.batch_size, n - i)).to(ctx.device, torch::kFloat32), ctx.rope,
          &observer);
    let.s1 =
        let_init(act_max[LinearKind::Q], w.q_proj, run.settings.number("omniquant", "alpha")).set_requires_grad(true);
    let.s2 =
        let_init(act_max[LinearKind::O], w.o_proj, run.settings.number("omniquant", "alpha")).set_requires_grad(true);
    let.s3 =
        let_init(act_max[LinearKind::Up], w.up_proj, run.settings.number("omniquant", "alpha")).set_requires_grad(true);
    let.s4 = torch::ones({c.num_heads * c.head_dim / 2}, w.q_proj.options()).set_requires_grad(true);
  }

  // Each Linear's own grid (quant::linear_grid: a GGUF k-quant target's fallback type, or F16 or
  // IQ4_NL, which have no clipping to learn: their logits stay at their init and are not used, and
  // they are rounded to nearest).
  std::map<LinearKind, quant::LinearGrid> grid;
  std::map<LinearKind, torch::Tensor> gamma, beta;
  std::vector<torch::Tensor> lwc_params;
  for (auto kind : model::kAllLinears) {
    const auto name = "block " + std::to_string(ctx.index) + " " + model::linear_name(kind);
    quant::check_finite(w.linear(kind), name);
    grid[kind] = quant::linear_grid(spec, w.linear(kind).size(1));
    const auto groups = grid[kind].learnable() ? grid[kind].spec.groups(w.linear(kind).size(1)) : 1;
    gamma[kind] =
        torch::full({w.linear(kind).size(0), groups}, quant::kLwcInitLogit, w.q_proj.options()).set_requires_grad(true);
    beta[kind] =
        torch::full({w.linear(kind).size(0), groups}, quant::kLwcInitLogit, w.q_proj.options()).set_requires_grad(true);
    lwc_params.push_back(gamma[kind]);
    lwc_params.push_back(beta[kind]);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(lwc_params,
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(run.settings.number("omniquant", "lwc_lr")).weight_decay(0.0)));
  if (use_let)
    groups.emplace_back(std::vector<torch::Tensor>{let.s1, let.s2, let.s3, let.s4},
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(run.settings.number("omniquant", "let_lr")).weight_decay(0.0)));
  torch::optim::AdamW opt(groups,
                          torch::optim::AdamWOptions(run.settings.number("omniquant", "lwc_lr")).weight_decay(0.0));

  auto quantized_block = [&] {
    model::DecoderBlockWeights t = use_let ? let.apply(w, c) : w;
    for (auto kind : model::kAllLinears)
      t.linear(kind) = grid[kind].learnable()
                           ? quant::lwc_fake_quantize(t.linear(kind), grid[kind].spec, gamma[kind], beta[kind])
                           : quant::fake_quantize_linear(t.linear(kind), spec);
    return t;
  };

  bool learns_clipping = false;
  for (const auto& [kind, g] : grid) learns_clipping = learns_clipping || g.learnable();
  // Nothing to train when every Linear is rounded to nearest (F16, IQ4_NL) and LET is off.
  const auto epochs = learns_clipping || use_let ? omniquant_epochs(run) : 0;
  if (epochs == 0 && !learns_clipping)
    log("no Linear of this block is on a uniform grid (F16 or IQ4_NL) and LET is off: nothing to train");
  const bool aug = omniquant_aug_loss(run);
  const auto bs = std::min(run.settings.integer("omniquant", "batch"), n);
  const auto steps_per_epoch = (n + bs - 1) / bs;
  const auto total_steps = epochs * steps_per_epoch;
  log(std::to_string(epochs) + " epochs x " + std::to_string(steps_per_epoch) + " steps, LWC" +
      (use_let ? " + LET" : "") + (aug ? ", augmented loss" : ""));
  NonFiniteGuard guard(ctx, "omniquant");
  torch::AutoGradMode enable_grad(true);  // the run loop holds a NoGradGuard
  std::int64_t step = 0;
  double epoch_loss = 0;
  for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
    epoch_loss = 0;
    std::int64_t counted = 0;
    for (std::int64_t i = 0; i < n; i += bs) {
      ctx.stop.throw_if_stopped();
      ++step;
      const auto b = std::min(bs, n - i);
      auto x = ctx.inputs_quant.narrow(0, i, b).to(ctx.device, torch::kFloat32);
      auto y = ctx.targets.narrow(0, i, b).to(ctx.device, torch::kFloat32);
      if (use_let) let.truncate();
      opt.zero_grad();
      auto out = model::decoder_block_forward(c, quantized_block(), x, ctx.rope, forward);
      auto loss = torch::mse_loss(out, y);
      if (aug) {
        torch::Tensor y_aug;
        {
          torch::NoGradGuard no_grad;
          y_aug = model::decoder_block_forward(c, w, x, ctx.rope);
        }
        loss = loss + torch::mse_loss(out, y_aug);
      }
      const double value = loss.item<double>();
      if (!guard.accept(value, opt, step, epoch)) continue;
      loss.backward();
      opt.step();
      epoch_loss += value;
      ++counted;
      report_step_loss(ctx, step, total_steps, epoch, epochs, value);
    }
    if (counted) epoch_loss /= static_cast<double>(counted);
  }
  log("final epoch mean loss " + std::to_string(epoch_loss));

  torch::NoGradGuard no_grad;
  OmniquantResult result;
  if (use_let) {
    let.truncate();
    result.weights = let.apply(w, c);
    for (auto* t : result.weights.all_tensors())
      if (t->defined()) *t = t->detach();
    state["omniquant.let.s1"] = let.s1.detach().cpu();
    state["omniquant.let.s2"] = let.s2.detach().cpu();
    state["omniquant.let.s3"] = let.s3.detach().cpu();
    state["omniquant.let.s4"] = let.s4.detach().cpu();
  } else {
    result.weights = w;
  }
  for (auto kind : model::kAllLinears) {
    result.gamma[kind] = gamma[kind].detach();
    result.beta[kind] = beta[kind].detach();
    state[std::string("omniquant.lwc_gamma.") + model::linear_name(kind)] = result.gamma[kind].cpu();
    state[std::string("omniquant.lwc_beta.") + model::linear_name(kind)] = result.beta[kind].cpu();
  }
  return result;
}

model::QuantizedBlock OmniquantMethod::quantize_block(model::DecoderBlockWeights weights,
                                                      const pipeline::BlockContext& ctx) {
  std::map<std::string, torch::Tensor> state;
  auto trained = omniquant_train(std::move(weights), ctx, state);
  torch::NoGradGuard no_grad;
  model::QuantizedBlock block;
  const auto& w = trained.weights;
  for (auto kind : model::kAllLinears) {
    const auto grid = quant::linear_grid(ctx.run->weight, w.linear(kind).size(1));
    block.linears[kind] = grid.learnable()
                              ? quant::lwc_quantize(w.linear(kind), grid.spec, trained.gamma[kind], trained.beta[kind])
                              : quant::quantize_linear_rtn(w.linear(kind), ctx.run->weight, model::linear_name(kind));
  }
  block.set_float_parts(w);
  block.method_state = std::move(state);
  return block;
}

std::unique_ptr<pipeline::BlockMethod> make_omniquant_method() { return std::make_unique<OmniquantMethod>(); }

}  // namespace tessera::methods
