#pragma once
// What a weight quantizer does (the uniform group quantizer of AWQ, OmniQuant and TesseraQ,
// arXiv 2306.00978, 2308.13137, 2410.19103): b-bit uniform codes per group of
// `group_size` input columns (0 = per output channel, i.e. one group per row), asymmetric min/max
// with a rounded zero point, or symmetric (zero fixed at 2^(b-1)).
#include <cstdint>
#include <string>

namespace tessera::quant {

// The levels codes stand for. Uniform: code q is q - z steps of the scale. Iq4Nl: llama.cpp's
// IQ4_NL, the weight is d * kIq4NlLevels[q] (quant/codebook_grid.h); the fallback of the Q2_K and
// Q3_K targets for rows that are not whole super-blocks (quant/grid_target.h).
enum class Levels { Uniform, Iq4Nl };

struct WeightQuantSpec {
  int bits = 4;
  std::int64_t group_size = 128;  // 0 = per channel
  bool symmetric = false;
  // 0: scales are any fp32 value. p in 1..11: every scale is an fp16 value of at most p significant
  // bits, so that a GGUF block type stores it, and -zero * scale, exactly (quant/grid_target.h).
  int scale_bits = 0;
  // 0: group scales are independent. n > 0 (GGUF's k-quants, quant/grid_target.h): within each
  // super-block of kSuperBlockColumns input columns of a row, the group scales are d * k with d an
  // fp16 value and k an integer in 1..n; with asymmetric codes (Q2_K, Q4_K, Q5_K) the group offsets
  // z * s are dmin * m as well, dmin fp16 and m in 0..n (superblock_offsets()).
  int superblock_levels = 0;
  static constexpr std::int64_t kSuperBlockColumns = 256;  // ggml's QK_K
  Levels levels = Levels::Uniform;

  void validate() const;  // throws naming the bad field
  std::int64_t effective_group(std::int64_t in_features) const { return group_size <= 0 ? in_features : group_size; }
  std::int64_t groups(std::int64_t in_features) const {  // ragged last group counts as one
    const auto g = effective_group(in_features);
    return (in_features + g - 1) / g;
  }
  // True for the k-quants with mins: a group's zero point is then offset / scale, not an integer,
  // and the weight is q * s - offset (quant/group_quantizer.h group_offsets).
  bool superblock_offsets() const { return superblock_levels > 0 && !symmetric; }
  bool nonuniform() const { return levels != Levels::Uniform; }
  std::string label() const;  // "W4 g128", "W2 per-channel"
  bool same_grid(const WeightQuantSpec& o) const {
    return bits == o.bits && group_size == o.group_size && symmetric == o.symmetric && scale_bits == o.scale_bits &&
           superblock_levels == o.superblock_levels && levels == o.levels;
  }
};

}  // namespace tessera::quant
