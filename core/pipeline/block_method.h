#pragma once
// A quantization method transforms one decoder block at a time (the block reconstruction of
// OmniQuant, arXiv 2308.13137, and TesseraQ, arXiv 2410.19103): it gets the block's full-precision
// weights, its calibration inputs on both chains and the FP targets, and returns integer codes.
// RTN, AWQ, OmniQuant and TesseraQ implement it.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "model/llama_model.h"
#include "model/quantized_block.h"
#include "pipeline/run_config.h"
#include "rundir/run_event.h"
#include "util/stop_token.h"

namespace tessera::pipeline {

// What a method returns (model/quantized_block.h); the run loop names it without model::.
using model::QuantizedBlock;

struct BlockContext {
  std::int64_t index = 0;
  const model::LlamaConfig* config = nullptr;
  const RunConfig* run = nullptr;
  model::RopeTables rope;
  torch::Tensor inputs_quant;          // [n, L, D]: output of the already-quantized blocks
  torch::Tensor inputs_fp;             // [n, L, D]: output of the FP blocks (the FP chain)
  torch::Tensor targets;               // [n, L, D]: FP block applied to inputs_fp
  torch::Device device = torch::kCPU;  // where the block computes; tensors above may live elsewhere
  rundir::EventSink* events = nullptr;
  StopToken stop;
};

class BlockMethod {
 public:
  virtual ~BlockMethod() = default;
  virtual std::string name() const = 0;
  // `weights` are the block's FP weights (float32, on ctx.device); the method may modify them.
  virtual QuantizedBlock quantize_block(model::DecoderBlockWeights weights, const BlockContext& ctx) = 0;
};

std::unique_ptr<BlockMethod> make_block_method(const RunConfig& config);

// Plain RTN of every Linear of `w` (after whatever transform a method applied), keeping norms/biases.
// `spec` is the run's; each Linear is quantized on its own grid (quant::linear_grid).
QuantizedBlock quantize_block_rtn(const model::DecoderBlockWeights& w, const quant::WeightQuantSpec& spec,
                                  std::int64_t block_index);

}  // namespace tessera::pipeline
