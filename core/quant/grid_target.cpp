#include "quant/grid_target.h"

namespace tessera::quant {

const std::vector<GridTarget>& grid_targets() {
  // scale_bits: 11 = any fp16 value; 11 - b for the _1 types, so that z d (z < 2^b) is one too.
  static const std::vector<GridTarget> targets = {
      {"gguf-q4_0", {4, 32, true, 11}, "GGUF Q4_0: 4-bit symmetric, fp16 scale per 32", "Q4_0", ""},
      {"gguf-q4_1", {4, 32, false, 7}, "GGUF Q4_1: 4-bit asymmetric, fp16 scale and min per 32", "Q4_1", ""},
      {"gguf-q5_0", {5, 32, true, 11}, "GGUF Q5_0: 5-bit symmetric, fp16 scale per 32", "Q5_0", ""},
      {"gguf-q5_1", {5, 32, false, 6}, "GGUF Q5_1: 5-bit asymmetric, fp16 scale and min per 32", "Q5_1", ""},
      {"gguf-q8_0", {8, 32, true, 11}, "GGUF Q8_0: 8-bit symmetric, fp16 scale per 32", "Q8_0", ""},
      // k-quants: the last field of the spec is the largest integer scale k (grid_target.h); the
      // fallbacks are llama-quant.cpp's (llama_tensor_get_type).
      {"gguf-q2_k",
       {2, 16, false, 0, 15},
       "GGUF Q2_K: 2-bit, 4-bit scale and min per 16 times fp16 per 256",
       "Q2_K",
       "IQ4_NL"},
      {"gguf-q3_k",
       {3, 16, true, 0, 31},
       "GGUF Q3_K: 3-bit symmetric, 6-bit scale per 16 times fp16 per 256",
       "Q3_K",
       "IQ4_NL"},
      {"gguf-q4_k",
       {4, 32, false, 0, 63},
       "GGUF Q4_K: 4-bit, 6-bit scale and min per 32 times fp16 per 256",
       "Q4_K",
       "gguf-q5_0"},
      {"gguf-q5_k",
       {5, 32, false, 0, 63},
       "GGUF Q5_K: 5-bit, 6-bit scale and min per 32 times fp16 per 256",
       "Q5_K",
       "gguf-q5_1"},
      {"gguf-q6_k",
       {6, 16, true, 0, 127},
       "GGUF Q6_K: 6-bit symmetric, 8-bit scale per 16 times fp16 per 256",
       "Q6_K",
       "gguf-q8_0"},
  };
  return targets;
}

const GridTarget* find_grid_target(const std::string& id) {
  for (const auto& t : grid_targets())
    if (t.id == id) return &t;
  return nullptr;
}

LinearGrid linear_grid(const WeightQuantSpec& run_spec, std::int64_t in_features) {
  LinearGrid g;
  g.spec = run_spec;
  const GridTarget* target = nullptr;
  for (const auto& t : grid_targets())
    if (t.spec.same_grid(run_spec)) target = &t;
  if (!target) return g;  // not a GGUF grid: one spec for every Linear
  g.gguf_type = target->gguf_type;
  const auto columns = WeightQuantSpec::kSuperBlockColumns;
  if (run_spec.superblock_levels <= 0 || in_features % columns == 0) return g;
  // llama-quant.cpp: "tensor cols N x M are not divisible by 256, required for Q4_K" - the
  // fallback type, then F16 when its blocks (32 weights for every fallback) do not divide N either.
  const auto* fallback = find_grid_target(target->fallback);
  const std::string why = "input width " + std::to_string(in_features) + " is not a multiple of " +
                          std::to_string(columns) + " (" + target->gguf_type + " super-blocks)";
  constexpr std::int64_t kFallbackBlock = 32;  // QK4_0 .. QK8_0, and QK4_NL
  if (in_features % kFallbackBlock != 0) {
    g.quantized = false;
    g.gguf_type = "F16";
    g.reason = why + " nor of " + std::to_string(kFallbackBlock) + " (" +
               (fallback ? fallback->gguf_type : target->fallback) + " blocks)";
    return g;
  }
  g.reason = why;
  g.spec = fallback ? fallback->spec : iq4_nl_spec();
  g.gguf_type = fallback ? fallback->gguf_type : target->fallback;
  return g;
}

WeightQuantSpec iq4_nl_spec() {
  WeightQuantSpec s{4, 32, true, 11};
  s.levels = Levels::Iq4Nl;
  return s;
}

std::string grid_target_ids() {
  std::string out;
  for (const auto& t : grid_targets()) out += (out.empty() ? "" : ", ") + t.id;
  return out;
}

}  // namespace tessera::quant
