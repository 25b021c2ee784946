#pragma once
// OmniQuant (arXiv 2308.13137; official code quantize/omniquant.py): per block, learnable weight
// clipping (LWC: two logits per group for all seven Linears, init 4) and, for weight-activation
// settings on multi-head attention models, the learnable equivalent transformation (LET: channel
// scales s1 (norm -> q/k/v), s2 (v -> o), s3 (norm -> gate/up) and s4 (q -> k)), trained with AdamW
// (wd 0; LWC lr 1e-2, LET lr 5e-3) on the MSE between the quantized block's output on the quantized
// chain and the FP targets (plus, with the augmented loss, the FP block's output on the same
// inputs), one sample per step in a fixed order, for 20 epochs (40 at 2 bits). Used as a baseline
// and as TesseraQ's initialisation (its clip logits).
//
// Deliberate deviation: s4 has one entry per RoPE pair (dimensions j and j + head_dim/2 share it),
// so the q/k transformation commutes with the rotation and is exactly function-preserving; [OQ]
// trains one per dimension, which is exact only when pairs happen to agree.
#include <map>

#include "pipeline/block_method.h"

namespace tessera::methods {

// LET parameters of one block (OmniQuant's models/int_llama_layer.py): s1 [D] (norm -> q/k/v), s2
// [D] (v -> o, multi-head attention only), s3 [D] (norm -> gate/up), s4 [num_heads * head_dim / 2]
// (q -> k, one per RoPE pair).
struct LetScales {
  torch::Tensor s1, s2, s3, s4;

  // [OQ]'s truncate_number before every forward: |s| < 1e-2 becomes sign(s) 1e-2.
  void truncate();
  // The function-preserving transform of `w` (differentiable w.r.t. the scales).
  model::DecoderBlockWeights apply(const model::DecoderBlockWeights& w, const model::LlamaConfig& c) const;
};

struct OmniquantResult {
  model::DecoderBlockWeights weights;  // LET-transformed FP weights (norms included); = input without LET
  std::map<model::LinearKind, torch::Tensor> gamma, beta;  // trained LWC logits, [O, G]
};

// Trains LWC (and LET when the run asks for it and the model allows it) for one block. Stores
// "omniquant.lwc_gamma.<layer>", "omniquant.lwc_beta.<layer>" and "omniquant.let.<s1..s4>" in `state`.
OmniquantResult omniquant_train(model::DecoderBlockWeights w, const pipeline::BlockContext& ctx,
                                std::map<std::string, torch::Tensor>& state);

class OmniquantMethod : public pipeline::BlockMethod {
 public:
  std::string name() const override { return "omniquant"; }
  model::QuantizedBlock quantize_block(model::DecoderBlockWeights weights, const pipeline::BlockContext& ctx) override;
};

}  // namespace tessera::methods
