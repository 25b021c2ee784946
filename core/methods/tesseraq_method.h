#pragma once
// TesseraQ (tesseraq-method.md section 4): after an init (AWQ scales + LLMC v1 clip on the
// quantized-chain features, OmniQuant LWC logits, or none) the grid (s, z) of every group is
// frozen; one rounding variable nu per weight (h = rsig(nu) = clamp(1.2 sigmoid(nu) - 0.1, 0, 1),
// initialised to frac(W/s)) and one dequantization-scale variable v per group (delta = 2 rsig(v),
// v = 0) are trained by Progressive Adaptive Rounding: for each soft fraction t of the schedule,
// harden all but t of each Linear's elements (largest |h - 0.5| first), then a fresh Adam
// minimises the per-token squared L2 error of the block output against the FP targets. Final
// codes clamp(floor(W/s) + 1[nu > 0] + z), scale s * delta, zero z.
//
// Numerics: parameters, the fake-quant arithmetic and the loss are fp32. The block's matmuls run
// in the run's train dtype: fp32 on the CPU, bf16 on CUDA by default. bf16 has fp32's exponent
// range, so unlike the official fp16 autocast it needs no GradScaler (a loss scale would only
// matter for fp16 gradients underflowing); the benchmark and RESULTS.md compare it with fp32.
// Hard elements are a boolean mask plus their fixed rounding instead of nu = +-inf (8.2), and the
// soft weight is one autograd function (tesseraq_soft_weight.h).
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "methods/tesseraq_soft_weight.h"
#include "pipeline/block_method.h"
#include "quant/group_quantizer.h"

namespace tessera::methods {

// The inverse on [0, 1] of the rectified sigmoid (methods/tesseraq_soft_weight.h).
torch::Tensor rectified_sigmoid_inverse(const torch::Tensor& y);

// TesseraQ state of one Linear, all [O, I] except the per-group tensors [O, G].
struct TesseraqLinear {
  quant::WeightQuantSpec spec;
  std::int64_t group = 0;     // effective group size
  torch::Tensor scale, zero;  // frozen grid, [O, G]
  torch::Tensor scale_cols, zero_cols;  // the grid expanded to [O, I]
  torch::Tensor floor_codes;  // floor(W / s), float
  torch::Tensor frac;         // W / s - floor(W / s), in [0, 1) (the init; dropped by the trainer)
  torch::Tensor nu;           // rounding variables (requires grad)
  torch::Tensor v;            // DST variables [O, G] (requires grad)
  torch::Tensor hard;         // bool: element hardened
  torch::Tensor hard_value;   // float 0/1: the rounding of hard elements

  // Freezes the grid of w (the min/max grid of the already clipped w, or `grid` when given, e.g.
  // OmniQuant's LWC grid) and sets h = frac(W/s).
  static TesseraqLinear init(const torch::Tensor& w, const quant::WeightQuantSpec& spec,
                             const std::optional<quant::GroupGrid>& grid = std::nullopt);
  torch::Tensor rounding() const;     // h: hard_value where hard, else rsig(nu) (differentiable)
  torch::Tensor soft_codes() const;   // clamp(floor + h + z, 0, qmax)
  torch::Tensor dst_factor() const;   // delta = 2 rsig(v), [O, G]
  // (soft code - z) * s * delta, [O, I], as a composition of libtorch ops (the reference for the
  // fused function below, which training uses).
  torch::Tensor soft_weight() const;
  torch::Tensor fused_soft_weight(torch::ScalarType dtype = torch::kFloat32);
  // PAR harden phase: the quantile (numpy linear interpolation, pos = t (N - 1)) of the score
  // |h - 0.5| (0.5 for hard elements) over the whole Linear, then every element with score > tau
  // becomes hard with rounding 1[h > 0.5]. Returns tau.
  double harden(double soft_fraction);
  double hard_fraction() const;
  // Final integer codes clamp(floor + 1[nu > 0] + z) (hard elements: their fixed rounding), uint8.
  torch::Tensor final_codes() const;
  quant::QuantizedLinear finalize() const;

 private:
  // Read by the backward pass of the graph that fused_soft_weight() built, so it must neither be
  // destroyed nor change (next call, harden()) before that backward has run: one forward and one
  // backward per step, as the trainer does.
  SoftWeightConstants constants_;
};

struct TesseraqTrainerOptions {
  int activation_bits = 0;
  double lr = 1e-3, scale_lr = 1e-3, scale_wd = 1e-4;
  torch::ScalarType compute_dtype = torch::kFloat32;  // dtype of the block's matmuls
  bool fused_soft_weight = true;  // false: the composed expression (the benchmark's comparison)
};

// The trainable state of one block and its PAR steps, apart from the run plumbing so that the
// benchmark drives exactly what a run does.
class TesseraqBlockTrainer {
 public:
  // `w`: the block after the init (fp32, on the compute device); `grids`: frozen grids per Linear
  // where the init provides them (others: min/max of w).
  TesseraqBlockTrainer(const model::LlamaConfig& config, const model::DecoderBlockWeights& w,
                       const std::map<model::LinearKind, quant::GroupGrid>& grids, const quant::WeightQuantSpec& spec,
                       const TesseraqTrainerOptions& options, model::RopeTables rope);
  // Hardens every Linear to the soft fraction and starts a fresh Adam (lr x lr_factor). Returns
  // the hard fraction over the whole block.
  double begin_iteration(double soft_fraction, double lr_factor = 1.0);
  // The loss of a batch (x: inputs on the quantized chain, y: FP targets; any dtype, on the
  // compute device), with its graph; then update() = zero_grad, backward, one Adam step. The
  // caller checks the loss in between (a non-finite loss is skipped, not applied).
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y);
  void update(const torch::Tensor& loss);
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  // The block with the current soft weights (fp32, no gradient), and the finished block.
  model::DecoderBlockWeights soft_block();
  std::map<model::LinearKind, TesseraqLinear>& layers() { return layers_; }

 private:
  const model::LlamaConfig& config_;
  model::DecoderBlockWeights float_parts_;    // norms/biases in fp32 (Linears undefined)
  model::DecoderBlockWeights compute_block_;  // the same in the compute dtype
  std::map<model::LinearKind, TesseraqLinear> layers_;
  TesseraqTrainerOptions options_;
  model::RopeTables rope_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
};

// Per-token squared L2 norm of the error, summed over hidden, averaged over tokens and batch (4.8),
// in fp32 whatever the output's dtype.
torch::Tensor tesseraq_loss(const torch::Tensor& out, const torch::Tensor& target);

class TesseraqMethod : public pipeline::BlockMethod {
 public:
  std::string name() const override { return "tesseraq"; }
  pipeline::QuantizedBlock quantize_block(model::DecoderBlockWeights weights,
                                          const pipeline::BlockContext& ctx) override;
};

}  // namespace tessera::methods
