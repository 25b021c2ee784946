#include "methods/tesseraq_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "util/error.h"

#ifdef TESSERA_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "kernels/soft_rounding_kernels.h"
#endif

namespace tessera::methods {

torch::Tensor rectified_sigmoid(const torch::Tensor& x) {
  return torch::clamp(1.2 * torch::sigmoid(x) - 0.1, 0.0, 1.0);
}

torch::Tensor rectified_sigmoid_inverse(const torch::Tensor& y) {
  // rsig^-1(y) = -ln(1.2 / (y + 0.1) - 1), finite on [0, 1] (about -2.398 .. 2.398); computed in
  // double so that rsig(rsig^-1(frac)) reproduces frac to fp32 precision.
  auto yd = torch::clamp(y.to(torch::kFloat64), 0.0, 1.0);
  return (-torch::log(1.2 / (yd + 0.1) - 1.0)).to(y.scalar_type());
}

std::vector<double> nonnegative_order_statistics(const torch::Tensor& x, const std::vector<std::int64_t>& ranks) {
  torch::NoGradGuard no_grad;
  if (x.scalar_type() != torch::kFloat32) throw Error("order statistics: fp32 values expected");
  const auto n = x.numel();
  std::vector<double> out;
  if (ranks.empty()) return out;
  for (auto r : ranks)
    if (r < 0 || r >= n)
      throw Error("order statistics: rank " + std::to_string(r) + " outside 0.." + std::to_string(n - 1));
  // Non-negative fp32 values order as their bit patterns read as int32, so the k-th smallest is
  // found digit by digit: a histogram of the high 16 bits picks the bucket that holds rank k, a
  // histogram of the low 16 bits inside that bucket picks the value. Two passes over the list,
  // where kthvalue on one CUDA slice of 10^8 elements takes about a second.
  const auto bits = x.contiguous().view({-1}).view(torch::kInt32);
  const auto high = bits.__rshift__(16);
  const auto high_counts = torch::bincount(high, {}, 1 << 16).cumsum(0).to(torch::kCPU);
  const auto* high_cum = high_counts.data_ptr<std::int64_t>();
  const auto cum = [](const std::int64_t* c, std::int64_t i) { return i > 0 ? c[i - 1] : std::int64_t{0}; };
  for (auto r : ranks) {
    const auto h = static_cast<std::int64_t>(std::upper_bound(high_cum, high_cum + (1 << 16), r) - high_cum);
    const auto low = bits.masked_select(high == h).__and__(0xFFFF);
    const auto low_counts = torch::bincount(low, {}, 1 << 16).cumsum(0).to(torch::kCPU);
    const auto* low_cum = low_counts.data_ptr<std::int64_t>();
    const auto l =
        static_cast<std::int64_t>(std::upper_bound(low_cum, low_cum + (1 << 16), r - cum(high_cum, h)) - low_cum);
    const auto pattern = static_cast<std::uint32_t>((h << 16) | l);
    float value;
    std::memcpy(&value, &pattern, sizeof value);
    out.push_back(value);
  }
  return out;
}

namespace {

// rsig'(x) = 1.2 sigma(x) (1 - sigma(x)) where 0 <= 1.2 sigma(x) - 0.1 <= 1, else 0 (torch.clamp
// passes the gradient at equality; so does this).
torch::Tensor rectified_sigmoid_grad(const torch::Tensor& x) {
  auto sig = torch::sigmoid(x);
  auto pre = 1.2 * sig - 0.1;
  return (1.2 * sig * (1.0 - sig)) * ((pre >= 0.0) & (pre <= 1.0)).to(torch::kFloat32);
}

// Sum over each group of g columns: [O, I] -> [O, G] (a ragged last group is zero-padded).
torch::Tensor group_sum(const torch::Tensor& x, std::int64_t g) {
  const auto in = x.size(1), groups = (in + g - 1) / g;
  auto padded = groups * g == in ? x : torch::constant_pad_nd(x, {0, groups * g - in});
  return padded.view({x.size(0), groups, g}).sum(2);
}

// Flat positions in [O, I] -> flat indices of their groups in [O, G].
torch::Tensor group_of(const torch::Tensor& positions, std::int64_t cols, std::int64_t group, std::int64_t groups) {
  return torch::div(positions, cols, "trunc") * groups + torch::div(torch::remainder(positions, cols), group, "trunc");
}

// torch.optim.Adam's update of p with gradient g (weight decay already in g).
void adam_update(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& m, torch::Tensor& v2, double lr,
                 const TesseraqAdam& adam, double inv_bias1, double inv_bias2_sqrt) {
  m.mul_(adam.beta1).add_(g, 1.0 - adam.beta1);
  v2.mul_(adam.beta2).addcmul_(g, g, 1.0 - adam.beta2);
  p.addcdiv_(m, v2.sqrt() * inv_bias2_sqrt + adam.eps, -lr * inv_bias1);
}

#ifdef TESSERA_CUDA_KERNELS
kernels::Dtype kernel_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return kernels::Dtype::F32;
    case torch::kBFloat16:
      return kernels::Dtype::BF16;
    case torch::kHalf:
      return kernels::Dtype::F16;
    default:
      throw Error(std::string("TesseraQ kernels: unsupported weight dtype ") + c10::toString(t));
  }
}

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

kernels::SoftLayer kernel_layer(TesseraqLinear& l, torch::Tensor& step, torch::Tensor& step_zero,
                                torch::Tensor& group_grad, torch::Tensor& soft_group_start) {
  if (!step.defined()) step = torch::empty_like(l.scale);
  if (!group_grad.defined()) group_grad = torch::empty_like(l.scale);
  if (l.spec.superblock_offsets() && !step_zero.defined()) step_zero = torch::empty_like(l.scale);
  kernels::SoftLayer k;
  k.rows = l.rows();
  k.cols = l.cols();
  k.group = l.group;
  k.groups = l.scale.size(1);
  k.qmax = static_cast<float>(l.qmax());
  k.scale_bits = l.spec.scale_bits;
  if (l.spec.superblock_levels > 0) {
    k.superblock_levels = l.spec.superblock_levels;
    k.superblock_groups = quant::WeightQuantSpec::kSuperBlockColumns / l.group;
    if (k.groups % k.superblock_groups != 0)
      throw Error("TesseraQ kernels: GGUF k-quant scales need rows of whole 256-column super-blocks, a layer has " +
                  std::to_string(k.cols) + " columns");
  }
  k.code_type = l.codes.scalar_type() == torch::kInt8 ? kernels::CodeType::I8 : kernels::CodeType::I16;
  k.codes = l.codes.data_ptr();
  k.scale = l.scale.data_ptr<float>();
  k.zero = l.zero.data_ptr<float>();
  k.v = l.v.data_ptr<float>();
  k.step = step.data_ptr<float>();
  k.group_grad = group_grad.data_ptr<float>();
  k.step_zero = l.spec.superblock_offsets() ? step_zero.data_ptr<float>() : nullptr;
  k.soft_count = l.soft_count();
  k.soft_index = l.soft_count() ? l.soft_index.data_ptr<std::int32_t>() : nullptr;
  k.soft_nu = l.soft_count() ? l.soft_nu.data_ptr<float>() : nullptr;
  if (!soft_group_start.defined()) {  // the soft list changed (init, harden)
    soft_group_start = torch::empty({k.rows * k.groups + 1}, l.codes.options().dtype(torch::kInt32));
    kernels::index_soft_groups(k, soft_group_start.data_ptr<std::int32_t>(), current_stream());
  }
  k.soft_group_start = soft_group_start.data_ptr<std::int32_t>();
  return k;
}

#endif

}  // namespace

torch::Tensor adam_step_coefficients(const torch::Tensor& loss, torch::Tensor& step_count, const TesseraqAdam& adam,
                                     bool kernels) {
  torch::NoGradGuard no_grad;
#ifdef TESSERA_CUDA_KERNELS
  if (kernels && loss.is_cuda()) {
    auto c = torch::empty({3}, loss.options().dtype(torch::kFloat32));
    const auto l = loss.detach().to(torch::kFloat32).contiguous();
    kernels::adam_begin_step(step_count.data_ptr<std::int64_t>(), l.data_ptr<float>(), c.data_ptr<float>(),
                             static_cast<float>(adam.beta1), static_cast<float>(adam.beta2), current_stream());
    return c;
  }
#endif
  (void)kernels;
  if (!std::isfinite(loss.item<double>())) return torch::zeros({3}, torch::kFloat64);
  const auto t = step_count.item<std::int64_t>() + 1;
  step_count.fill_(t);
  return torch::tensor({1.0, 1.0 / (1.0 - std::pow(adam.beta1, static_cast<double>(t))),
                        1.0 / std::sqrt(1.0 - std::pow(adam.beta2, static_cast<double>(t)))},
                       torch::kFloat64);
}

TesseraqLinear TesseraqLinear::init(const torch::Tensor& w, const quant::WeightQuantSpec& spec,
                                    const std::optional<quant::GroupGrid>& grid) {
  torch::NoGradGuard no_grad;
  if (spec.bits < 1 || spec.bits > 8)
    throw Error("TesseraQ: weight bits must be 1..8, not " + std::to_string(spec.bits));
  if (w.numel() >= std::numeric_limits<std::int32_t>::max())
    throw Error("TesseraQ: a Linear of " + std::to_string(w.numel()) +
                " elements exceeds the 2^31 soft-list positions");
  TesseraqLinear l;
  l.spec = spec;
  const auto in = w.size(1);
  l.group = spec.effective_group(in);
  const auto g = grid ? *grid : quant::compute_grid(w, spec);
  l.scale = g.scale.detach().to(torch::kFloat32).contiguous();
  l.zero = g.zero.detach().to(torch::kFloat32).contiguous();
  auto scaled = w.to(torch::kFloat32) / quant::expand_groups(l.scale, l.group, in);
  // An integer zero point shifts the codes after the floor; a fractional one (k-quant offsets)
  // before it, so that the codes stay integers.
  const bool fractional_zero = spec.superblock_offsets();
  if (fractional_zero) scaled.add_(quant::expand_groups(l.zero, l.group, in));
  const auto floor_codes = torch::floor(scaled);
  const auto frac = torch::clamp(scaled - floor_codes, 0.0, 1.0);
  const double qmax = l.qmax();
  l.codes =
      torch::clamp(fractional_zero ? floor_codes : floor_codes + quant::expand_groups(l.zero, l.group, in), -1.0, qmax)
          .to(qmax + 1 <= 127 ? torch::kInt8 : torch::kInt16)
          .contiguous();
  l.soft_index = torch::arange(w.numel(), torch::TensorOptions().dtype(torch::kInt32).device(w.device()));
  l.soft_nu = rectified_sigmoid_inverse(frac).flatten().contiguous();
  l.v = torch::zeros_like(l.scale);
  l.reset_adam();
  return l;
}

double TesseraqLinear::qmax() const { return std::pow(2.0, spec.bits) - 1.0; }

bool TesseraqLinear::runs_kernels() const {
#ifdef TESSERA_CUDA_KERNELS
  return use_kernels && codes.is_cuda();
#else
  return false;
#endif
}

torch::Tensor TesseraqLinear::dst_factor() const { return 2.0 * rectified_sigmoid(v); }

torch::Tensor TesseraqLinear::grid_step() const { return quant::representable_scales(scale * dst_factor(), spec); }

torch::Tensor TesseraqLinear::grid_zero(const torch::Tensor& step) const {
  if (!spec.superblock_offsets()) return zero;
  torch::NoGradGuard no_grad;
  return quant::group_offsets(step, zero, spec) / step;
}

void TesseraqLinear::write_weight(torch::Tensor& out) {
  torch::NoGradGuard no_grad;
  if (!out.is_contiguous() || out.dim() != 2 || out.size(0) != rows() || out.size(1) != cols())
    throw Error("TesseraQ: the weight buffer must be a contiguous [" + std::to_string(rows()) + ", " +
                std::to_string(cols()) + "] tensor");
#ifdef TESSERA_CUDA_KERNELS
  if (runs_kernels()) {
    const auto k = kernel_layer(*this, step_, step_zero_, group_grad_, soft_group_start_);
    kernels::soft_weight_forward(k, kernel_dtype(out.scalar_type()), out.data_ptr(), current_stream());
    return;
  }
#endif
  const auto in = cols();
  const auto step = grid_step();
  const auto z = grid_zero(step);
  auto dense = (torch::clamp(codes.to(torch::kFloat32), 0.0, qmax()) - quant::expand_groups(z, group, in)) *
               quant::expand_groups(step, group, in);
  if (soft_count() > 0) {
    const auto idx = soft_index.to(torch::kInt64);
    const auto k = group_of(idx, in, group, scale.size(1));
    const auto q = torch::clamp(codes.flatten().index_select(0, idx).to(torch::kFloat32) + rectified_sigmoid(soft_nu),
                                0.0, qmax());
    dense.view({-1}).index_copy_(0, idx, (q - z.flatten().index_select(0, k)) * step.flatten().index_select(0, k));
  }
  out.copy_(dense);
}

torch::Tensor TesseraqLinear::weight(torch::ScalarType dtype) {
  auto out = torch::empty({rows(), cols()}, codes.options().dtype(dtype));
  write_weight(out);
  return out;
}

TesseraqLinear::Gradients TesseraqLinear::gradients(const torch::Tensor& grad_w) {
  torch::NoGradGuard no_grad;
  Gradients out;
#ifdef TESSERA_CUDA_KERNELS
  if (runs_kernels()) {
    auto g = grad_w.contiguous();
    out.nu = torch::empty_like(soft_nu);
    out.v = torch::empty_like(v);
    step_ = grid_step().contiguous();
    const auto k = kernel_layer(*this, step_, step_zero_, group_grad_, soft_group_start_);
    kernels::soft_weight_gradients(k, kernel_dtype(g.scalar_type()), g.data_ptr(), out.nu.data_ptr<float>(),
                                   out.v.data_ptr<float>(), current_stream());
    return out;
  }
#endif
  const auto in = cols();
  const auto g = grad_w.to(torch::kFloat32);
  const auto step = grid_step();
  const auto floor_q = torch::clamp(codes.to(torch::kFloat32), 0.0, qmax());
  auto group_grad = group_sum(g * (floor_q - quant::expand_groups(zero, group, in)), group) * scale;
  out.nu = torch::zeros_like(soft_nu);
  if (soft_count() > 0) {
    const auto idx = soft_index.to(torch::kInt64);
    const auto k = group_of(idx, in, group, scale.size(1));
    const auto gs = g.flatten().index_select(0, idx);
    const auto base = codes.flatten().index_select(0, idx).to(torch::kFloat32);
    const auto t = base + rectified_sigmoid(soft_nu);
    group_grad.view({-1}).index_add_(
        0, k,
        gs * scale.flatten().index_select(0, k) * (torch::clamp(t, 0.0, qmax()) - torch::clamp(base, 0.0, qmax())));
    const auto inside = ((t >= 0.0) & (t <= qmax())).to(torch::kFloat32);
    out.nu = gs * step.flatten().index_select(0, k) * rectified_sigmoid_grad(soft_nu) * inside;
  }
  out.v = group_grad * 2.0 * rectified_sigmoid_grad(v);
  return out;
}

void TesseraqLinear::reset_adam() {
  // Released here and allocated (zero) by the next adam_step, so that they never coexist with the
  // hardening's temporaries or with the moments of a list about to shrink.
  nu_m_ = nu_v_ = v_m_ = v_v_ = torch::Tensor();
}

void TesseraqLinear::ensure_adam_moments() {
  if (nu_m_.defined()) return;
  nu_m_ = torch::zeros_like(soft_nu);
  nu_v_ = torch::zeros_like(soft_nu);
  v_m_ = torch::zeros_like(v);
  v_v_ = torch::zeros_like(v);
}

void TesseraqLinear::adam_step(const torch::Tensor& grad_w, const TesseraqAdam& adam,
                               const torch::Tensor& coefficients) {
  torch::NoGradGuard no_grad;
  ensure_adam_moments();
#ifdef TESSERA_CUDA_KERNELS
  if (runs_kernels()) {
    auto g = grad_w.contiguous();
    kernels::AdamGroups a;
    a.lr_nu = static_cast<float>(adam.lr_nu);
    a.lr_v = static_cast<float>(adam.lr_v);
    a.weight_decay_v = static_cast<float>(adam.weight_decay_v);
    a.beta1 = static_cast<float>(adam.beta1);
    a.beta2 = static_cast<float>(adam.beta2);
    a.eps = static_cast<float>(adam.eps);
    a.nu_m = soft_count() ? nu_m_.data_ptr<float>() : nullptr;
    a.nu_v = soft_count() ? nu_v_.data_ptr<float>() : nullptr;
    a.v_m = v_m_.data_ptr<float>();
    a.v_v = v_v_.data_ptr<float>();
    const auto c = coefficients.to(codes.device(), torch::kFloat32).contiguous();
    a.coefficients = c.data_ptr<float>();
    const auto k = kernel_layer(*this, step_, step_zero_, group_grad_, soft_group_start_);
    kernels::soft_weight_adam_step(k, kernel_dtype(g.scalar_type()), g.data_ptr(), a, current_stream());
    return;
  }
#endif
  const auto c = coefficients.to(torch::kCPU, torch::kFloat64);
  if (c[0].item<double>() == 0.0) return;
  const double inv_bias1 = c[1].item<double>(), inv_bias2_sqrt = c[2].item<double>();
  const auto grads = gradients(grad_w);
  adam_update(soft_nu, grads.nu, nu_m_, nu_v_, adam.lr_nu, adam, inv_bias1, inv_bias2_sqrt);
  adam_update(v, grads.v + adam.weight_decay_v * v, v_m_, v_v_, adam.lr_v, adam, inv_bias1, inv_bias2_sqrt);
}

double TesseraqLinear::harden(double soft_fraction) {
  torch::NoGradGuard no_grad;
  // The Adam moments restart after hardening anyway; releasing them first keeps them out of the
  // peak (8 bytes per soft element, 6.8 GB on a 70B-shaped block in the first iteration).
  reset_adam();
  soft_group_start_ = torch::Tensor();
  const auto n = codes.numel(), s = soft_count();
  double tau = 0.5;
  if (s == 0) return tau;
  // score = |rsig(nu) - 0.5|, built in place: one temporary of the list's size.
  auto score = torch::sigmoid(soft_nu);
  score.mul_(1.2).sub_(0.1).clamp_(0.0, 1.0).sub_(0.5).abs_();
  // numpy.quantile (linear) over all n scores: the soft ones sorted, then the hard ones at 0.5,
  // the largest score there is.
  const double pos = soft_fraction * static_cast<double>(n - 1);
  const auto lo = static_cast<std::int64_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, n - 1);
  std::vector<std::int64_t> ranks;
  for (auto r : {lo, hi})
    if (r < s) ranks.push_back(r);
  const auto stats = nonnegative_order_statistics(score, ranks);
  const double a = lo < s ? stats[0] : 0.5;
  const double b = hi < s ? stats.back() : 0.5;
  tau = a + (b - a) * (pos - static_cast<double>(lo));
  const auto newly = score > tau;
  score = torch::Tensor();
  const auto idx = soft_index.masked_select(newly).to(torch::kInt64);
  if (idx.numel() > 0) {
    auto flat = codes.view({-1});
    // rsig(nu) > 0.5 exactly when nu > 0.
    const auto up = (soft_nu.masked_select(newly) > 0).to(codes.scalar_type());
    flat.index_put_({idx}, flat.index_select(0, idx) + up);
    const auto keep = newly.logical_not();
    soft_index = soft_index.masked_select(keep);
    soft_nu = soft_nu.masked_select(keep);
  }
  return tau;
}

double TesseraqLinear::hard_fraction() const {
  return 1.0 - static_cast<double>(soft_count()) / static_cast<double>(codes.numel());
}

torch::Tensor TesseraqLinear::hard_mask() const {
  auto mask = torch::ones({rows(), cols()}, codes.options().dtype(torch::kBool));
  if (soft_count() > 0) mask.view({-1}).index_fill_(0, soft_index.to(torch::kInt64), false);
  return mask;
}

torch::Tensor TesseraqLinear::final_codes() const {
  torch::NoGradGuard no_grad;
  auto c = codes.to(torch::kInt32);
  if (soft_count() > 0) {
    const auto idx = soft_index.to(torch::kInt64);
    auto flat = c.view({-1});
    flat.index_put_({idx}, flat.index_select(0, idx) + (soft_nu > 0).to(torch::kInt32));
  }
  return torch::clamp(c, 0, static_cast<std::int64_t>(qmax())).to(torch::kUInt8);
}

quant::QuantizedLinear TesseraqLinear::finalize() const {
  torch::NoGradGuard no_grad;
  quant::QuantizedLinear q;
  q.spec = spec;
  q.codes = final_codes();
  q.scale = grid_step().detach();
  q.zero = grid_zero(q.scale);
  return q;
}

}  // namespace tessera::methods
