#include "methods/rtn_method.h"

#include "methods/awq_method.h"
#include "methods/omniquant_method.h"
#include "methods/tesseraq_method.h"
#include "quant/group_quantizer.h"
#include "util/error.h"

namespace tessera::pipeline {

QuantizedBlock quantize_block_rtn(const model::DecoderBlockWeights& w, const quant::WeightQuantSpec& spec,
                                  std::int64_t block_index) {
  QuantizedBlock b;
  for (auto kind : model::kAllLinears) {
    const std::string name = "block " + std::to_string(block_index) + " " + model::linear_name(kind);
    b.linears[kind] = quant::quantize_rtn(w.linear(kind), spec, name);
  }
  b.set_float_parts(w);
  return b;
}

std::unique_ptr<BlockMethod> make_block_method(const RunConfig& config) {
  if (config.method == "rtn") return std::make_unique<methods::RtnMethod>();
  if (config.method == "awq") return std::make_unique<methods::AwqMethod>();
  if (config.method == "omniquant") return std::make_unique<methods::OmniquantMethod>();
  if (config.method == "tesseraq") return std::make_unique<methods::TesseraqMethod>();
  throw Error("unknown method \"" + config.method + "\"");
}

}  // namespace tessera::pipeline

namespace tessera::methods {

pipeline::QuantizedBlock RtnMethod::quantize_block(model::DecoderBlockWeights weights,
                                                   const pipeline::BlockContext& ctx) {
  return pipeline::quantize_block_rtn(weights, ctx.run->weight, ctx.index);
}

}  // namespace tessera::methods
