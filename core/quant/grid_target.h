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
//   Q2_K / Q4_K / Q5_K  y = d k q - dmin m               k, m in 1..15 / 1..63; written with dmin =
//                       2^(b-1) d and m = k, i.e. y = d k (q - 2^(b-1)): the symmetric codes only,
//                       not the per-group offsets these types could also hold
// (llama.cpp's ggml-quants.c dequantize_row_*; the packing is formats/gguf_blocks.h).
#include <string>
#include <vector>

#include "quant/quant_spec.h"

namespace tessera::quant {

struct GridTarget {
  std::string id;           // the --target value and the matching export format, e.g. "gguf-q4_0"
  WeightQuantSpec spec;     // bits, group, symmetric, scale_bits, superblock_levels
  std::string description;  // one line for help texts
};

const std::vector<GridTarget>& grid_targets();
const GridTarget* find_grid_target(const std::string& id);  // nullptr when unknown
std::string grid_target_ids();                              // "gguf-q4_0, gguf-q4_1, ..."

}  // namespace tessera::quant
