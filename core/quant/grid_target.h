#pragma once
// Quantization grids that are exactly what one GGUF block type stores, so that a run made on one
// exports bit-exactly and llama.cpp computes the run's weights (`--target gguf-q4_0`). The types of
// 32-weight blocks with an fp16 scale d per block:
//   Q4_0 / Q5_0 / Q8_0  y = (q - 2^(b-1)) d             symmetric codes, d any fp16 value
//   Q4_1 / Q5_1         y = q d + m,  m = -z d in fp16   asymmetric codes with an integer zero z;
//                       -z d is an fp16 value when d has at most 11 - b significant bits
// and the k-quants, super-blocks of 256 weights with one fp16 d and a small integer scale k per
// group of 16 or 32 (so group scales are d * k):
//   Q3_K / Q6_K         y = d k (q - 2^(b-1))           k in 1..31 / 1..127 (stored as k + 32 / int8)
//   Q2_K / Q4_K / Q5_K  y = d k q - dmin m               k in 1..15 / 1..63, m in 0..15 / 0..63,
//                       dmin fp16: asymmetric codes whose group offsets dmin m are quantized like
//                       the scales (WeightQuantSpec::superblock_offsets, quant::group_offsets)
// (llama.cpp's ggml-quants.c dequantize_row_*; the packing is formats/gguf_blocks.h).
//
// A k-quant needs rows of whole super-blocks: a Linear whose input width (ggml's ne[0]) is not a
// multiple of 256 gets the type llama.cpp itself falls back to (llama-quant.cpp,
// llama_tensor_get_type, "convert_incompatible_tensor"): Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
// Q2_K and Q3_K -> IQ4_NL (a non-uniform grid, quant/codebook_grid.h); and F16 when the
// fallback's 32-weight blocks do not divide the width either. linear_grid() is that rule; every
// method, the block files, the statistics and the GGUF export apply it to each Linear.
#include <cstdint>
#include <string>
#include <vector>

#include "quant/quant_spec.h"

namespace tessera::quant {

struct GridTarget {
  std::string id;           // the --target value and the matching export format, e.g. "gguf-q4_0"
  WeightQuantSpec spec;     // bits, group, symmetric, scale_bits, superblock_levels
  std::string description;  // one line for help texts
  std::string gguf_type;    // ggml's name of the block type, e.g. "Q4_0"
  // k-quants: the --target of llama.cpp's fallback type for rows that are not whole super-blocks
  // ("gguf-q5_0"), or "IQ4_NL", a type written only as a fallback; "" for the 32-weight types.
  std::string fallback;
};

// How one Linear is stored under a run's weight spec.
struct LinearGrid {
  bool quantized = true;  // false: not quantized, the weight rounded to fp16 (GGUF F16)
  WeightQuantSpec spec;   // the Linear's grid when quantized
  std::string gguf_type;  // "Q4_K", "Q5_0", "F16", "IQ4_NL"; "" for a run without a GGUF target
  std::string reason;     // "" on the run's own grid, else why it falls back
  bool fallback() const { return !reason.empty(); }
  // Quantized on uniform levels, what OmniQuant's clipping and TesseraQ's rounding learn; the others
  // (F16, IQ4_NL) are rounded to nearest.
  bool learnable() const { return quantized && !spec.nonuniform(); }
};

// The grid of a Linear with `in_features` input columns in a run whose weight spec is `run_spec`
// (RunConfig::weight): run_spec itself unless it is a k-quant target's grid and in_features is not
// a multiple of 256, then llama.cpp's fallback (see above). A pure function of its arguments, so
// that block files need not record it.
LinearGrid linear_grid(const WeightQuantSpec& run_spec, std::int64_t in_features);

// IQ4_NL's grid: 4-bit codes on its levels, an fp16 scale per 32 (quant/codebook_grid.h).
WeightQuantSpec iq4_nl_spec();

const std::vector<GridTarget>& grid_targets();
const GridTarget* find_grid_target(const std::string& id);  // nullptr when unknown
std::string grid_target_ids();                              // "gguf-q4_0, gguf-q4_1, ..."

}  // namespace tessera::quant
