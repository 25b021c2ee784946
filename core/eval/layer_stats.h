#pragma once
// Where the quantization error comes from, per Linear of a block: relative weight error
// ||W - Q(W)|| / ||W||, output MSE of the layer on its calibration inputs, and the share of codes
// that differ from plain RTN of the same weight ("flip ratio"); and the block output loss
// (per-token squared L2 summed over hidden, averaged over tokens: TesseraQ's loss, arXiv
// 2410.19103, as the official code's LossFunction('l2') computes it).
#include <torch/torch.h>

#include <string>
#include <vector>

#include "eval/layer_stats_record.h"
#include "model/llama_model.h"
#include "model/quantized_block.h"

namespace tessera::eval {

std::vector<LayerStats> compute_layer_stats(const model::LlamaConfig& config, const model::QuantizedBlock& block,
                                            std::int64_t block_index, const torch::Tensor& inputs,
                                            const model::RopeTables& rope, torch::Device device,
                                            std::int64_t batch_size);

double block_output_loss(const model::LlamaConfig& config, const model::DecoderBlockWeights& weights,
                         const torch::Tensor& inputs, const torch::Tensor& targets, const model::RopeTables& rope,
                         torch::Device device, std::int64_t batch_size, int activation_bits);

}  // namespace tessera::eval
