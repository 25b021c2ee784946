#pragma once
// AWQ (arXiv 2306.00978) as TesseraQ uses it, LLMC's variant
// (llmc/compression/quantization/awq.py): per-channel scales searched over an alpha grid for the
// four LLaMA subsets (norm->qkv, v->o (MHA only), norm->gate/up, up->down), applied as a
// function-preserving transform, then LLMC's asymmetric clip search (every Linear but q/k) and RTN.
// Deviation from the AWQ paper and llm-awq: the clip shrinks min and max by the same ratio (lo*r,
// hi*r) instead of clamping to +-r max|w|. Scales and clip ratios are kept as method state so that
// TesseraQ can start from them.
#include <map>

#include "pipeline/block_method.h"

namespace tessera::methods {

class AwqMethod : public pipeline::BlockMethod {
 public:
  std::string name() const override { return "awq"; }
  model::QuantizedBlock quantize_block(model::DecoderBlockWeights weights, const pipeline::BlockContext& ctx) override;
};

// The AWQ scale for mean activation magnitudes `a` and exponent alpha: a^alpha clamped at 1e-4 and
// normalised by sqrt(max * min).
torch::Tensor awq_scale(const torch::Tensor& mean_abs, double alpha);

// LLMC's asymmetric clip search for one Linear: per (row, group) ratio r in {1, 1 - 1/grid, ...}
// (int(max_shrink * grid) candidates) minimising the mean squared error of the per-group partial
// products on the sampled inputs x [N, in]. Returns r as [O, G].
torch::Tensor search_clip_ratios(const torch::Tensor& w, const torch::Tensor& x, const quant::WeightQuantSpec& spec,
                                 int grid, double max_shrink);

// The AWQ scale search and its function-preserving transform on the FP chain ctx.inputs_fp.
// Stores "awq.scale.<subset>" in `state`. `features` holds the recorded (and rescaled) inputs of
// q (shared by k, v), o, gate (shared by up) and down, keyed by those Linears.
struct AwqScaled {
  model::DecoderBlockWeights weights;
  std::map<model::LinearKind, torch::Tensor> features;
};
AwqScaled awq_apply_scales(model::DecoderBlockWeights w, const pipeline::BlockContext& ctx,
                           std::map<std::string, torch::Tensor>& state);

// LLMC's asymmetric clip (auto_clip) of v, o, gate, up and down on `features` (keyed as above):
// clamps the weights in place and stores "awq.clip.<layer>" in `state`.
void awq_clip_weights(model::DecoderBlockWeights& w, const std::map<model::LinearKind, torch::Tensor>& features,
                      const pipeline::BlockContext& ctx, std::map<std::string, torch::Tensor>& state);

// w clamped per group to [r * lo, r * hi].
torch::Tensor apply_clip(const torch::Tensor& w, const torch::Tensor& ratio, std::int64_t group_size);

}  // namespace tessera::methods
