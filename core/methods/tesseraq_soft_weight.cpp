#include "methods/tesseraq_soft_weight.h"

#include "quant/quantized_linear.h"

namespace tessera::methods {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Sum over each group of g columns: [O, I] -> [O, G] (a ragged last group is zero-padded).
torch::Tensor group_sum(const torch::Tensor& x, std::int64_t g) {
  const auto in = x.size(1), groups = (in + g - 1) / g;
  auto padded = groups * g == in ? x : torch::constant_pad_nd(x, {0, groups * g - in});
  return padded.view({x.size(0), groups, g}).sum(2);
}

// rsig'(x) = 1.2 sigma(x)(1 - sigma(x)) where 0 <= 1.2 sigma(x) - 0.1 <= 1, else 0 (torch.clamp
// passes the gradient at equality; so does this).
torch::Tensor rectified_sigmoid_grad(const torch::Tensor& sig) {
  auto pre = 1.2 * sig - 0.1;
  return (1.2 * sig * (1.0 - sig)) * ((pre >= 0.0) & (pre <= 1.0)).to(sig.scalar_type());
}

}  // namespace

torch::Tensor rectified_sigmoid(const torch::Tensor& x) { return torch::clamp(1.2 * torch::sigmoid(x) - 0.1, 0.0, 1.0); }

namespace {

class SoftWeightFunction : public torch::autograd::Function<SoftWeightFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& nu, const torch::Tensor& v,
                               const SoftWeightConstants* k) {
    ctx->saved_data["constants"] = reinterpret_cast<std::int64_t>(k);
    ctx->save_for_backward({nu, v});
    auto h = torch::where(k->hard, k->hard_value, rectified_sigmoid(nu));
    auto delta = quant::expand_groups(2.0 * rectified_sigmoid(v), k->group, nu.size(1));
    auto q = torch::clamp(k->floor_codes + h + k->zero_cols, 0.0, k->qmax);
    return ((q - k->zero_cols) * (k->scale_cols * delta)).to(k->out_dtype);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto* k = reinterpret_cast<const SoftWeightConstants*>(ctx->saved_data["constants"].toInt());
    const auto saved = ctx->get_saved_variables();
    const auto& nu = saved[0];
    const auto& v = saved[1];
    const auto grad = grad_outputs[0].to(torch::kFloat32);
    const auto in = nu.size(1);

    auto sig_v = torch::sigmoid(v);
    auto delta_g = 2.0 * torch::clamp(1.2 * sig_v - 0.1, 0.0, 1.0);
    auto sig = torch::sigmoid(nu);
    auto h = torch::where(k->hard, k->hard_value, torch::clamp(1.2 * sig - 0.1, 0.0, 1.0));
    auto t = k->floor_codes + h + k->zero_cols;
    auto inside = (t >= 0.0) & (t <= k->qmax);
    auto g_scaled = grad * k->scale_cols;  // dL/d(q - z) / delta

    // dW/dnu = s delta 1[0 <= t <= qmax] rsig'(nu); zero for hard elements.
    auto grad_nu = g_scaled * quant::expand_groups(delta_g, k->group, in) * rectified_sigmoid_grad(sig) *
                   (inside & k->hard.logical_not()).to(torch::kFloat32);
    // dW/dv = s (q - z) 2 rsig'(v), summed over the group.
    auto q = torch::clamp(t, 0.0, k->qmax);
    auto grad_v = group_sum(g_scaled * (q - k->zero_cols), k->group) * 2.0 * rectified_sigmoid_grad(sig_v);
    return {grad_nu, grad_v, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor fused_soft_weight(const torch::Tensor& nu, const torch::Tensor& v, const SoftWeightConstants& constants) {
  return SoftWeightFunction::apply(nu, v, &constants);
}

}  // namespace tessera::methods
