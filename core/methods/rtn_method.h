#pragma once
// Round-to-nearest with the min/max grid: the baseline every other method starts from.
#include "pipeline/block_method.h"

namespace tessera::methods {

class RtnMethod : public pipeline::BlockMethod {
 public:
  std::string name() const override { return "rtn"; }
  model::QuantizedBlock quantize_block(model::DecoderBlockWeights weights, const pipeline::BlockContext& ctx) override;
};

}  // namespace tessera::methods
