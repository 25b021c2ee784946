#include "quant/quant_spec.h"

#include "util/error.h"

namespace tessera::quant {

void WeightQuantSpec::validate() const {
  if (bits < 2 || bits > 8) throw Error("weight bits must be between 2 and 8 (got " + std::to_string(bits) + ")");
  if (group_size < 0) throw Error("group size must be positive, or 0 for per-channel (got " + std::to_string(group_size) + ")");
}

std::string WeightQuantSpec::label() const {
  return "W" + std::to_string(bits) + (group_size <= 0 ? " per-channel" : " g" + std::to_string(group_size)) +
         (symmetric ? " sym" : "");
}

}  // namespace tessera::quant
