#pragma once
// TesseraQ (arXiv 2410.19103; the formulas are those of the official code, llmc/compression/
// quantization/tesseraq.py, which produced the paper's numbers): after an init (AWQ scales + LLMC
// v1 clip on the quantized-chain features, OmniQuant LWC logits, or none) the grid (s, z) of every
// group is frozen; one rounding variable nu per weight (h = rsig(nu) = clamp(1.2 sigmoid(nu) - 0.1,
// 0, 1), initialised to frac(W/s)) and one dequantization-scale variable v per group (delta = 2
// rsig(v), v = 0) are trained by Progressive Adaptive Rounding: for each soft fraction t of the
// schedule, harden all but t of each Linear's elements (largest |h - 0.5| first), then a fresh Adam
// minimises the per-token squared L2 error of the block output against the FP targets. Final codes
// clamp(floor(W/s) + 1[nu > 0] + z), scale s * delta, zero z.
//
// Numerics: parameters, the fake-quant arithmetic and the loss are fp32. The block's matmuls run
// in the run's train dtype: fp32 on the CPU, bf16 on CUDA by default. bf16 has fp32's exponent
// range, so unlike the official fp16 autocast it needs no GradScaler (a loss scale would only
// matter for fp16 gradients underflowing); the benchmark and RESULTS.md compare it with fp32.
// Each Linear is held compacted (methods/tesseraq_linear.h): integer codes plus the list of the
// elements still soft, on which alone gradients, Adam and hardening run.
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "methods/tesseraq_linear.h"
#include "pipeline/block_method.h"
#include "quant/group_quantizer.h"

namespace tessera::methods {

struct TesseraqTrainerOptions {
  int activation_bits = 0;
  double lr = 1e-3, scale_lr = 1e-3, scale_wd = 1e-4;
  torch::ScalarType compute_dtype = torch::kFloat32;  // dtype of the block's matmuls
  bool use_kernels = true;                            // false: libtorch ops even on CUDA (the benchmark's comparison)
};

// The trainable state of one block and its PAR steps, apart from the run plumbing so that the
// benchmark drives exactly what a run does.
class TesseraqBlockTrainer {
 public:
  // `w`: the block after the init (fp32, on the compute device); `grids`: frozen grids per Linear
  // where the init provides them (others: min/max of w). `spec` is the run's: each Linear trains on
  // its own grid (quant::linear_grid); one not on a uniform grid (a GGUF target's F16 or IQ4_NL
  // fallback) is not trained: it is rounded to nearest once, a constant of the block, in rounded()
  // and not in layers().
  TesseraqBlockTrainer(const model::LlamaConfig& config, const model::DecoderBlockWeights& w,
                       const std::map<model::LinearKind, quant::GroupGrid>& grids, const quant::WeightQuantSpec& spec,
                       const TesseraqTrainerOptions& options, model::RopeTables rope);
  // Hardens every Linear to the soft fraction and starts a fresh Adam (lr x lr_factor). Returns
  // the hard fraction over the whole block.
  double begin_iteration(double soft_fraction, double lr_factor = 1.0);
  // The loss of a batch (x: inputs on the quantized chain, y: FP targets; any dtype, on the
  // compute device), with its graph.
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y);
  // Backward and one Adam step (update = backward + apply_adam). A non-finite loss changes
  // nothing; on the CUDA kernels that is decided on the device, so the host need not read the loss
  // before the next step.
  void update(const torch::Tensor& loss);
  void backward(const torch::Tensor& loss);
  void apply_adam(const torch::Tensor& loss);
  // Multiplies the learning rates of both parameter groups (the non-finite guard halves them).
  void scale_learning_rates(double factor);
  // The block with the current soft weights (fp32, no gradient).
  model::DecoderBlockWeights soft_block();
  std::map<model::LinearKind, TesseraqLinear>& layers() { return layers_; }
  const std::map<model::LinearKind, quant::QuantizedLinear>& rounded() const { return rounded_; }
  bool runs_kernels() const;

 private:
  const model::LlamaConfig& config_;
  model::DecoderBlockWeights
      float_parts_;  // norms/biases and the rounded() Linears in fp32 (the trained ones undefined)
  model::DecoderBlockWeights compute_block_;  // the same in the compute dtype
  std::map<model::LinearKind, TesseraqLinear> layers_;
  std::map<model::LinearKind, quant::QuantizedLinear> rounded_;
  TesseraqTrainerOptions options_;
  model::RopeTables rope_;
  // The soft weights of the current step in the compute dtype: autograd leaves, so that backward
  // leaves dL/dW in their .grad() for TesseraqLinear::adam_step.
  std::map<model::LinearKind, torch::Tensor> weights_;
  TesseraqAdam adam_;
  torch::Tensor adam_steps_;  // int64 [1]: Adam steps taken in this iteration
};

// Per-token squared L2 norm of the error, summed over hidden, averaged over tokens and batch (the
// official code's LossFunction('l2')),
// in fp32 whatever the output's dtype.
torch::Tensor tesseraq_loss(const torch::Tensor& out, const torch::Tensor& target);

class TesseraqMethod : public pipeline::BlockMethod {
 public:
  std::string name() const override { return "tesseraq"; }
  model::QuantizedBlock quantize_block(model::DecoderBlockWeights weights, const pipeline::BlockContext& ctx) override;
};

}  // namespace tessera::methods
