#include "methods/rtn_method.h"

#include "quant/group_quantizer.h"
#include "util/error.h"

namespace tessera::pipeline {

QuantizedBlock quantize_block_rtn(const model::DecoderBlockWeights& w, const quant::WeightQuantSpec& spec,
                                  std::int64_t block_index) {
  QuantizedBlock b;
  for (auto kind : model::kAllLinears) {
    const std::string name = "block " + std::to_string(block_index) + " " + model::linear_name(kind);
    b.linears[kind] = quant::quantize_linear_rtn(w.linear(kind), spec, name);  // the Linear's own grid
  }
  b.set_float_parts(w);
  return b;
}

}  // namespace tessera::pipeline

namespace tessera::methods {

model::QuantizedBlock RtnMethod::quantize_block(model::DecoderBlockWeights weights, const pipeline::BlockContext& ctx) {
  return pipeline::quantize_block_rtn(weights, ctx.run->weight, ctx.index);
}

std::unique_ptr<pipeline::BlockMethod> make_rtn_method() { return std::make_unique<RtnMethod>(); }

}  // namespace tessera::methods
