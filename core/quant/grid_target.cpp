#include "quant/grid_target.h"

namespace tessera::quant {

const std::vector<GridTarget>& grid_targets() {
  // scale_bits: 11 = any fp16 value; 11 - b for the _1 types, so that z d (z < 2^b) is one too.
  static const std::vector<GridTarget> targets = {
      {"gguf-q4_0", {4, 32, true, 11}, "GGUF Q4_0: 4-bit symmetric, fp16 scale per 32"},
      {"gguf-q4_1", {4, 32, false, 7}, "GGUF Q4_1: 4-bit asymmetric, fp16 scale and min per 32"},
      {"gguf-q5_0", {5, 32, true, 11}, "GGUF Q5_0: 5-bit symmetric, fp16 scale per 32"},
      {"gguf-q5_1", {5, 32, false, 6}, "GGUF Q5_1: 5-bit asymmetric, fp16 scale and min per 32"},
      {"gguf-q8_0", {8, 32, true, 11}, "GGUF Q8_0: 8-bit symmetric, fp16 scale per 32"},
      // k-quants: the last field is the largest integer scale k (grid_target.h).
      {"gguf-q2_k", {2, 16, true, 0, 15}, "GGUF Q2_K: 2-bit symmetric, 4-bit scale per 16 times fp16 per 256"},
      {"gguf-q3_k", {3, 16, true, 0, 31}, "GGUF Q3_K: 3-bit symmetric, 6-bit scale per 16 times fp16 per 256"},
      {"gguf-q4_k", {4, 32, true, 0, 63}, "GGUF Q4_K: 4-bit symmetric, 6-bit scale per 32 times fp16 per 256"},
      {"gguf-q5_k", {5, 32, true, 0, 63}, "GGUF Q5_K: 5-bit symmetric, 6-bit scale per 32 times fp16 per 256"},
      {"gguf-q6_k", {6, 16, true, 0, 127}, "GGUF Q6_K: 6-bit symmetric, 8-bit scale per 16 times fp16 per 256"},
  };
  return targets;
}

const GridTarget* find_grid_target(const std::string& id) {
  for (const auto& t : grid_targets())
    if (t.id == id) return &t;
  return nullptr;
}

std::string grid_target_ids() {
  std::string out;
  for (const auto& t : grid_targets()) out += (out.empty() ? "" : ", ") + t.id;
  return out;
}

}  // namespace tessera::quant
