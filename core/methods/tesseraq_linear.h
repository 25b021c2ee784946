#pragma once
// One Linear under TesseraQ (arXiv 2410.19103), stored compacted: the frozen grid
// (s, z) per group, one integer code per element, and the rounding variables nu of the elements
// still soft as a list (position, value). PAR hardens most elements early (paper20: 20 % in the
// first iteration, 99.5 % in the last); a hard element is just its code and has no gradient in the
// method, so the gradient, Adam and the hardening run over the soft list only. This is exact.
//
//   W = s * delta * (clamp(code + h, 0, qmax) - z),  h = rsig(nu) for soft elements, 0 for hard
//   ones (their code includes their rounding), delta = 2 rsig(v) per group.
//
// Every operation has two implementations: CUDA kernels (kernels/soft_rounding_kernels.h; CUDA
// tensors in builds with TESSERA_CUDA_KERNELS) and libtorch ops (everything else, and the
// reference the kernels are tested against).
#include <torch/torch.h>

#include <optional>
#include <vector>

#include "quant/group_quantizer.h"
#include "quant/quantized_linear.h"

namespace tessera::methods {

// The rectified sigmoid rsig(x) = clamp(1.2 sigmoid(x) - 0.1, 0, 1) and its inverse on [0, 1].
torch::Tensor rectified_sigmoid(const torch::Tensor& x);
torch::Tensor rectified_sigmoid_inverse(const torch::Tensor& y);

// The values of the given ranks (0-based, ascending order) among the non-negative fp32 values x,
// equal to kthvalue(rank + 1) but in two histogram passes over x (radix select).
std::vector<double> nonnegative_order_statistics(const torch::Tensor& x, const std::vector<std::int64_t>& ranks);

// Adam for the method's two parameter groups (torch.optim.Adam semantics, weight decay as L2).
struct TesseraqAdam {
  double lr_nu = 1e-3, lr_v = 1e-3, weight_decay_v = 1e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// Adam's coefficients for TesseraqLinear::adam_step at this step, counting it in `step_count`
// (int64 [1], on the loss's device) unless the loss is not finite. With `kernels` (a CUDA loss) a
// kernel decides on the device and the host never waits for the loss; otherwise the loss is read.
torch::Tensor adam_step_coefficients(const torch::Tensor& loss, torch::Tensor& step_count, const TesseraqAdam& adam,
                                     bool kernels);

class TesseraqLinear {
 public:
  // Freezes the grid of w (min/max of the already clipped w, or `grid`, e.g. OmniQuant's LWC
  // grid); every element soft with h = frac(W / s).
  static TesseraqLinear init(const torch::Tensor& w, const quant::WeightQuantSpec& spec,
                             const std::optional<quant::GroupGrid>& grid = std::nullopt);

  quant::WeightQuantSpec spec;
  std::int64_t group = 0;     // effective group size
  torch::Tensor scale, zero;  // frozen grid [O, G]
  // int8 (int16 above 6 bits) [O, I]: hard elements floor(W/s) + z + rounding; soft elements
  // floor(W/s) + z clamped to [-1, qmax] (beyond that the clamp of the code decides alone). With a
  // fractional z (k-quant offsets) floor(W/s + z).
  torch::Tensor codes;
  torch::Tensor soft_index;  // int32 [S], ascending flat positions of the soft elements
  torch::Tensor soft_nu;     // fp32 [S], their rounding variables
  torch::Tensor v;           // fp32 [O, G], DST variables
  bool use_kernels = true;   // false: libtorch ops even where the CUDA kernels exist

  std::int64_t rows() const { return codes.size(0); }
  std::int64_t cols() const { return codes.size(1); }
  double qmax() const;
  bool runs_kernels() const;         // the CUDA kernels serve this layer
  torch::Tensor dst_factor() const;  // delta = 2 rsig(v), [O, G]
  // s * delta, [O, G], rounded to the scales spec.scale_bits allows (DST moves only to scales a
  // GGUF target stores; the gradient of v passes straight through the rounding).
  torch::Tensor grid_step() const;
  // The zero point that goes with `step` (grid_step): `zero`, or for k-quant offsets the offset
  // z * step moved onto its stored lattice, divided by step (quant::group_offsets).
  torch::Tensor grid_zero(const torch::Tensor& step) const;

  // The soft weight into `out` ([O, I], contiguous, fp32/bf16/fp16), or as a new tensor.
  void write_weight(torch::Tensor& out);
  torch::Tensor weight(torch::ScalarType dtype = torch::kFloat32);

  // dL/dnu of the soft list and dL/dv from dL/dW (the gradients adam_step applies).
  struct Gradients {
    torch::Tensor nu, v;
  };
  Gradients gradients(const torch::Tensor& grad_w);
  // Fresh Adam moments (each PAR iteration starts a new Adam): released now, zero at the next step.
  void reset_adam();
  // One Adam step from dL/dW. `coefficients` (fp32 [3], on this layer's device for the kernels):
  // {0 (skip the step) or 1, 1 / (1 - beta1^t), 1 / sqrt(1 - beta2^t)}. Follows write_weight of
  // the same step (the kernels reuse its s * delta).
  void adam_step(const torch::Tensor& grad_w, const TesseraqAdam& adam, const torch::Tensor& coefficients);

  // PAR harden phase: tau = the quantile (numpy linear, pos = t (N - 1)) of |h - 0.5| over all N
  // elements (hard ones count as 0.5); every soft element with a larger score becomes hard with
  // rounding 1[h > 0.5] and leaves the soft list. Returns tau.
  double harden(double soft_fraction);
  std::int64_t soft_count() const { return soft_index.numel(); }
  double hard_fraction() const;
  torch::Tensor hard_mask() const;  // bool [O, I]

  // Final integer codes clamp(code + 1[nu > 0] for soft elements, 0, qmax), uint8.
  torch::Tensor final_codes() const;
  quant::QuantizedLinear finalize() const;

 private:
  torch::Tensor step_, step_zero_, group_grad_;  // scratch for the kernels, [O, G]
  torch::Tensor soft_group_start_;               // the kernels' index of the soft list by group; reset when it changes
  torch::Tensor nu_m_, nu_v_, v_m_, v_v_;        // Adam moments; undefined until the first adam_step
  void ensure_adam_moments();
};

}  // namespace tessera::methods
