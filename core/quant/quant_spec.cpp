#include "quant/quant_spec.h"

#include "util/error.h"

namespace tessera::quant {

namespace {
constexpr std::int64_t kMaxGroupSize = std::int64_t{1} << 20;
}  // namespace

void WeightQuantSpec::validate() const {
  if (bits < 2 || bits > 8) throw Error("weight bits must be between 2 and 8 (got " + std::to_string(bits) + ")");
  if (group_size < 0)
    throw Error("group size must be positive, or 0 for per-channel (got " + std::to_string(group_size) + ")");
  // Far above any model's rows (2^17 for the largest today); a larger group would only be padding.
  if (group_size > kMaxGroupSize)
    throw Error("group size " + std::to_string(group_size) + " is larger than any row (at most " +
                std::to_string(kMaxGroupSize) + "; 0 = per channel)");
  if (scale_bits < 0 || scale_bits > 11)
    throw Error("scale bits must be 0 (fp32 scales) or 1..11 (fp16 scales), not " + std::to_string(scale_bits));
  if (superblock_levels < 0 || superblock_levels > 127)
    throw Error("super-block scale levels must be 0 (independent scales) or 1..127, not " +
                std::to_string(superblock_levels));
  if (superblock_levels > 0 && (group_size <= 0 || kSuperBlockColumns % group_size != 0 || scale_bits != 0))
    throw Error("super-block scales need scale bits 0 (the super-block sets them) and a group size dividing " +
                std::to_string(kSuperBlockColumns) + " (got " + label() + ")");
  if (levels == Levels::Iq4Nl && (bits != 4 || !symmetric || scale_bits != 11 || superblock_levels != 0))
    throw Error("IQ4_NL levels need 4-bit symmetric codes with fp16 scales (got " + label() + ")");
}

std::string WeightQuantSpec::label() const {
  return "W" + std::to_string(bits) + (group_size <= 0 ? " per-channel" : " g" + std::to_string(group_size)) +
         (symmetric ? " sym" : "") + (scale_bits > 0 ? " fp16-scales" : "") +
         (superblock_levels > 0 ? " k-quant-scales" : "") + (levels == Levels::Iq4Nl ? " IQ4_NL-levels" : "");
}

}  // namespace tessera::quant
