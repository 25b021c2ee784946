#include "methods/awq_method.h"

#include <limits>

#include "quant/group_quantizer.h"
#include "util/log.h"

namespace tessera::methods {

using model::LinearKind;

torch::Tensor awq_scale(const torch::Tensor& mean_abs, double alpha) {
  auto s = torch::clamp_min(mean_abs.pow(alpha), 1e-4);
  return s / torch::sqrt(s.max() * s.min());
}

torch::Tensor apply_clip(const torch::Tensor& w, const torch::Tensor& ratio, std::int64_t group_size) {
  auto [lo, hi] = quant::group_min_max(w, group_size);
  const auto in = w.size(1);
  auto lo_c = quant::expand_groups(lo * ratio, group_size, in), hi_c = quant::expand_groups(hi * ratio, group_size, in);
  return torch::max(torch::min(w, hi_c), lo_c);
}

namespace {

// [rows, in] -> [rows, G, g], zero-padding a ragged last group (zeros add nothing to dot products).
torch::Tensor group_view(const torch::Tensor& t, std::int64_t g) {
  const auto in = t.size(1), groups = (in + g - 1) / g;
  auto padded = groups * g == in ? t : torch::constant_pad_nd(t, {0, groups * g - in});
  return padded.view({t.size(0), groups, g});
}

// Mean over all elements of the squared difference, accumulated over batches of the first dim.
template <typename F>
double batched_mse(const torch::Tensor& x, std::int64_t batch, const torch::Tensor& ref, F&& f) {
  double sum = 0;
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < x.size(0); i += batch) {
    const auto n = std::min(batch, x.size(0) - i);
    auto diff = (f(x.narrow(0, i, n)) - ref.narrow(0, i, n)).to(torch::kFloat32);
    sum += diff.pow(2).sum().template item<double>();
    count += diff.numel();
  }
  return sum / static_cast<double>(count);
}

template <typename F>
torch::Tensor batched(const torch::Tensor& x, std::int64_t batch, F&& f) {
  std::vector<torch::Tensor> out;
  for (std::int64_t i = 0; i < x.size(0); i += batch) out.push_back(f(x.narrow(0, i, std::min(batch, x.size(0) - i))));
  return torch::cat(out, 0);
}

struct Subset {
  const char* name;
  std::vector<LinearKind> layers;
};

}  // namespace

torch::Tensor search_clip_ratios(const torch::Tensor& w, const torch::Tensor& x, const quant::WeightQuantSpec& spec,
                                 int grid, double max_shrink) {
  torch::NoGradGuard no_grad;
  const auto g = spec.effective_group(w.size(1));
  const auto candidates = std::max(1, static_cast<int>(max_shrink * grid));
  auto xg = group_view(x, g);  // [N, G, g]
  std::vector<torch::Tensor> best_rows;
  const std::int64_t chunk = (w.size(0) % 256 == 0) ? 256 : 64;  // LLMC's row chunks, bounds memory
  for (std::int64_t r0 = 0; r0 < w.size(0); r0 += chunk) {
    auto wc = w.narrow(0, r0, std::min(chunk, w.size(0) - r0));
    auto ref = torch::einsum("ngk,ogk->ong", {xg, group_view(wc, g)});
    auto groups = xg.size(1);
    auto best_err = torch::full({wc.size(0), groups}, std::numeric_limits<float>::infinity(), w.options());
    auto best_ratio = torch::ones({wc.size(0), groups}, w.options());
    for (int i = 0; i < candidates; ++i) {
      const double r = 1.0 - static_cast<double>(i) / grid;
      auto ratio = torch::full({wc.size(0), groups}, r, w.options());
      auto q = quant::fake_quantize(apply_clip(wc, ratio, g), spec);
      auto err = (torch::einsum("ngk,ogk->ong", {xg, group_view(q, g)}) - ref).pow(2).mean(1);
      auto better = err < best_err;
      best_err = torch::where(better, err, best_err);
      best_ratio = torch::where(better, ratio, best_ratio);
    }
    best_rows.push_back(best_ratio);
  }
  return torch::cat(best_rows, 0);
}

AwqScaled awq_apply_scales(model::DecoderBlockWeights w, const pipeline::BlockContext& ctx,
                           std::map<std::string, torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  const auto& c = *ctx.config;
  const auto& spec = ctx.run->weight;
  const auto batch = ctx.run->batch_size;
  auto log = [&](const std::string& m) {
    if (ctx.events) ctx.events->on_event(rundir::RunEvent::log(ctx.index, m));
  };

  // AWQ works on the full-precision chain (llm-awq's pre_quant.py, LLMC's awq.py): record each
  // Linear's input.
  auto x = ctx.inputs_fp.to(ctx.device, torch::kFloat32);
  std::map<LinearKind, std::vector<torch::Tensor>> recorded;
  model::LinearInputObserver observer = [&](LinearKind kind, const torch::Tensor& in) {
    if (kind == LinearKind::Q || kind == LinearKind::O || kind == LinearKind::Gate || kind == LinearKind::Down)
      recorded[kind].push_back(in.detach());
  };
  batched(x, batch,
          [&](const torch::Tensor& xb) { return model::decoder_block_forward(c, w, xb, ctx.rope, &observer); });
  auto feat_qkv = torch::cat(recorded[LinearKind::Q], 0);  // [n, L, D] normalized input of q/k/v
  auto feat_o = torch::cat(recorded[LinearKind::O], 0);    // [n, L, H*hd]
  auto feat_gate = torch::cat(recorded[LinearKind::Gate], 0);
  auto feat_down = torch::cat(recorded[LinearKind::Down], 0);
  recorded.clear();

  const int grid = static_cast<int>(ctx.run->settings.integer("awq", "grid"));
  auto mean_abs = [](const torch::Tensor& f) { return f.abs().reshape({-1, f.size(-1)}).mean(0); };

  // Search alpha for one subset: `evaluate(weights)` returns the subset module's output on `feat`.
  auto search =
      [&](const char* name, const std::vector<LinearKind>& layers, const torch::Tensor& feat,
          const std::function<torch::Tensor(const model::DecoderBlockWeights&, const torch::Tensor&)>& module) {
        ctx.stop.throw_if_stopped();
        auto a = mean_abs(feat);
        auto ref = batched(feat, batch, [&](const torch::Tensor& f) { return module(w, f); });
        double best_loss = std::numeric_limits<double>::infinity();
        double best_alpha = 0;
        torch::Tensor best_scale;
        for (int n = 0; n < grid; ++n) {
          const double alpha = static_cast<double>(n) / grid;
          auto s = awq_scale(a, alpha);
          model::DecoderBlockWeights trial = w;
          for (auto kind : layers) {
            auto ws = w.linear(kind) * s.unsqueeze(0);
            trial.linear(kind) = quant::fake_quantize_linear(ws, spec) / s.unsqueeze(0);
          }
          const double loss = batched_mse(feat, batch, ref, [&](const torch::Tensor& f) { return module(trial, f); });
          if (loss < best_loss) {
            best_loss = loss;
            best_alpha = alpha;
            best_scale = s;
          }
        }
        log(std::string("awq ") + name + ": alpha " + std::to_string(best_alpha) + ", loss " +
            std::to_string(best_loss));
        state[std::string("awq.scale.") + name] = best_scale.cpu();
        return best_scale;
      };
  auto scale_columns = [&](std::initializer_list<LinearKind> layers, const torch::Tensor& s) {
    for (auto kind : layers) w.linear(kind) = w.linear(kind) * s.unsqueeze(0);
  };

  // S1: input_layernorm -> q, k, v; compared on the whole attention output.
  {
    auto s = search("qkv", {LinearKind::Q, LinearKind::K, LinearKind::V}, feat_qkv,
                    [&](const model::DecoderBlockWeights& ww, const torch::Tensor& f) {
                      return model::attention_forward(c, ww, f, ctx.rope);
                    });
    w.input_norm = w.input_norm / s;
    scale_columns({LinearKind::Q, LinearKind::K, LinearKind::V}, s);
    feat_qkv = feat_qkv / s;
  }
  // S2: v_proj rows -> o_proj; only when v's outputs are o's inputs one to one (MHA, not GQA).
  if (c.num_kv_heads == c.num_heads) {
    auto s = search("o", {LinearKind::O}, feat_o, [&](const model::DecoderBlockWeights& ww, const torch::Tensor& f) {
      return at::linear(f, ww.o_proj);
    });
    w.v_proj = w.v_proj / s.unsqueeze(1);
    if (w.v_bias.defined()) w.v_bias = w.v_bias / s;
    scale_columns({LinearKind::O}, s);
    feat_o = feat_o / s;
  } else {
    log("awq o: skipped (grouped-query attention: v_proj outputs are shared by several heads)");
  }
  // S3: post_attention_layernorm -> gate, up; compared on the whole MLP output.
  {
    auto s =
        search("gate_up", {LinearKind::Gate, LinearKind::Up}, feat_gate,
               [&](const model::DecoderBlockWeights& ww, const torch::Tensor& f) { return model::mlp_forward(ww, f); });
    w.post_attention_norm = w.post_attention_norm / s;
    scale_columns({LinearKind::Gate, LinearKind::Up}, s);
    feat_gate = feat_gate / s;
  }
  // S4: up_proj rows -> down_proj.
  {
    auto s = search(
        "down", {LinearKind::Down}, feat_down,
        [&](const model::DecoderBlockWeights& ww, const torch::Tensor& f) { return at::linear(f, ww.down_proj); });
    w.up_proj = w.up_proj / s.unsqueeze(1);
    scale_columns({LinearKind::Down}, s);
    feat_down = feat_down / s;
  }

  AwqScaled out;
  out.weights = std::move(w);
  out.features[LinearKind::Q] = feat_qkv;
  out.features[LinearKind::O] = feat_o;
  out.features[LinearKind::Gate] = feat_gate;
  out.features[LinearKind::Down] = feat_down;
  return out;
}

void awq_clip_weights(model::DecoderBlockWeights& w, const std::map<LinearKind, torch::Tensor>& features,
                      const pipeline::BlockContext& ctx, std::map<std::string, torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  const auto& spec = ctx.run->weight;
  auto sample_tokens = [&](const torch::Tensor& f) {
    auto flat = f.reshape({-1, f.size(-1)});
    const auto step = std::max<std::int64_t>(1, flat.size(0) / ctx.run->settings.integer("awq", "clip_tokens"));
    return flat.index({torch::indexing::Slice(0, torch::indexing::None, step)});
  };
  // Input features of each clipped Linear: v shares q's input, up shares gate's.
  const std::pair<LinearKind, LinearKind> clipped[] = {{LinearKind::V, LinearKind::Q},
                                                       {LinearKind::O, LinearKind::O},
                                                       {LinearKind::Gate, LinearKind::Gate},
                                                       {LinearKind::Up, LinearKind::Gate},
                                                       {LinearKind::Down, LinearKind::Down}};
  for (const auto& [kind, input] : clipped) {
    ctx.stop.throw_if_stopped();
    // Each Linear is clipped for its own grid; one left unquantized (F16) has nothing to clip.
    const auto grid = quant::linear_grid(spec, w.linear(kind).size(1));
    if (!grid.quantized) continue;
    auto ratio = search_clip_ratios(w.linear(kind), sample_tokens(features.at(input)), grid.spec,
                                    static_cast<int>(ctx.run->settings.integer("awq", "clip_grid")),
                                    ctx.run->settings.number("awq", "max_shrink"));
    w.linear(kind) = apply_clip(w.linear(kind), ratio, grid.spec.effective_group(w.linear(kind).size(1)));
    state[std::string("awq.clip.") + model::linear_name(kind)] = ratio.cpu();
  }
}

model::QuantizedBlock AwqMethod::quantize_block(model::DecoderBlockWeights weights, const pipeline::BlockContext& ctx) {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> state;
  auto scaled = awq_apply_scales(std::move(weights), ctx, state);
  auto w = scaled.weights;
  if (ctx.run->settings.flag("awq", "clip")) awq_clip_weights(w, scaled.features, ctx, state);
  auto q = pipeline::quantize_block_rtn(w, ctx.run->weight, ctx.index);
  q.method_state = std::move(state);
  q.float_reference = scaled.weights;
  return q;
}

std::unique_ptr<pipeline::BlockMethod> make_awq_method() { return std::make_unique<AwqMethod>(); }

}  // namespace tessera::methods
