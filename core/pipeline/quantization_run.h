#pragma once
// The block-wise quantization loop (TesseraQ's block reconstruction, arXiv 2410.19103; the same
// data flow as OmniQuant's, arXiv 2308.13137): embeddings, then for each decoder
// block the FP target (FP block on the FP chain), the method on the block, and the next block's
// input through the quantized block. After every finished block its codes are written to the run
// directory, so an interrupted run resumes from the last finished block.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/layer_stats.h"
#include "model/llama_model.h"
#include "model/quantized_block.h"
#include "pipeline/run_config.h"
#include "rundir/run_event.h"
#include "rundir/run_manifest.h"
#include "util/stop_token.h"

namespace tessera::pipeline {

struct RunSummary {
  std::string run_dir;
  std::int64_t blocks = 0, restored_blocks = 0;
  double seconds = 0;
  std::string calibration_sha256;
  std::string placement;  // where calibration tensors lived
  std::vector<eval::LayerStats> layers;
  std::vector<double> loss_rtn, loss;  // per block output loss: plain RTN vs the method, on the quantized chain
};

RunSummary run_quantization(const RunConfig& config, const std::string& run_dir, bool resume, rundir::EventSink& events,
                            const StopToken& stop = StopToken());

// A run's run.json and its settings, parsed. Throws naming the folder when it holds no run manifest,
// or, with `require_finished`, when the run is not finished.
struct RunRecord {
  rundir::RunManifest manifest;
  RunConfig config;
};
RunRecord read_run_manifest(const std::string& run_dir, bool require_finished);

// The fake-quantized model of a finished run: every block Linear = dequantized codes, the method's
// norms, activation quantization when the run has act bits. Throws if the run is unfinished.
model::LlamaModel load_quantized_model(const std::string& run_dir, RunConfig* config_out = nullptr);
// The same from the run's blocks already in memory (an export reads them once, for packing, the
// float model and the self-check). `model_sha256` is run.json's, checked against the model file.
model::LlamaModel quantized_model_from_blocks(const RunConfig& config, const std::string& model_sha256,
                                              const std::vector<model::QuantizedBlock>& blocks,
                                              const std::string& run_dir);

}  // namespace tessera::pipeline
