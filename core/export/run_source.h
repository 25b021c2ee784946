#pragma once
// What every export reads from a finished run: the manifest, the config, and each block's integer
// codes (the source of truth; nothing is re-derived from float weights), plus the helpers that
// name Hugging Face tensors and build the reproducibility manifest every format embeds.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "model/quantized_block.h"
#include "pipeline/run_config.h"
#include "rundir/run_manifest.h"

namespace tessera::exporting {

struct RunSource {
  std::string run_dir;
  rundir::RunManifest manifest;  // run.json
  pipeline::RunConfig config;
  std::vector<model::QuantizedBlock> blocks;  // codes, scales, zeros of every block

  // Throws for a directory that is not a finished run. Without `codes`, each Linear's codes are a
  // zero-sized-storage placeholder of the right shape (an expanded scalar): enough for the format
  // checks (shapes, zero points, scales), which the GUI runs on every run it lists, without reading
  // a 7B model's gigabytes of codes.
  static RunSource load(const std::string& run_dir, bool codes = true);
  // run.json (without the internal config identity) plus each block's loss and per-layer relative
  // weight error: config, seed, calibration hash and sample offsets, method, code version.
  std::string manifest_text() const;
  // The fake-quantized model (embeddings, the run's norms, dequantized codes); needs the codes.
  model::LlamaModel model() const;

  // f(block index, kind, layer) for every quantized Linear, block by block.
  template <typename F>
  void for_each_linear(F&& f) const {
    for (std::size_t k = 0; k < blocks.size(); ++k)
      for (const auto& [kind, q] : blocks[k].linears) f(static_cast<std::int64_t>(k), kind, q);
  }

 private:
  bool has_codes_ = true;
};

// "model.layers.3.self_attn.q_proj" (the Hugging Face module name, without ".weight").
std::string hf_linear_module(std::int64_t block, model::LinearKind kind);
std::int64_t folder_bytes(const std::string& folder);  // a folder's files, or one file's size

// The self-check's comparison: throws "self-check failed: <what> ... differs from the run's codes in
// X of Y elements" unless `got` and `expected` have the same shape and identical values.
void require_identical(const torch::Tensor& got, const torch::Tensor& expected, const std::string& what);

}  // namespace tessera::exporting
