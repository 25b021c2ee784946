#pragma once
// Exports of finished runs for the CLI and the GUI (torch-free header; see api/model_jobs.h).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "util/stop_token.h"

namespace tessera::api {

// One export format and whether it can hold a given run exactly (for the GUI's format list).
struct ExportFormatInfo {
  std::string id;      // the --format value: hf, gptq, gptq-v1, awq, gguf-f32, gguf-f16, gguf-q4_1, gguf-q5_1
  std::string label;   // "Fake-quant Hugging Face folder (safetensors)"
  bool available = false;
  std::string reason;  // why not, when !available ("AWQ-GEMM holds 4-bit only")
};

// The formats this build knows, each checked against the run in `run_dir`.
std::vector<ExportFormatInfo> export_formats_for_run(const std::string& run_dir);

struct ExportRequest {
  std::string run_dir, out;
  std::string format = "hf";  // an ExportFormatInfo::id; gguf-* write one file at `out`, the others a folder
  std::string dtype = "fp16";  // float tensors (hf), scales and float layers (gptq/awq); unused by gguf-*
  bool replace_existing = false;
};

struct ExportProgress {
  std::string stage;  // "writing" (the write and its self-check), then "done"
  std::int64_t done = 0, total = 0;
};

struct ExportResult {
  std::string path, format, dtype;
  std::int64_t bytes = 0, tensors_checked = 0;
  std::string self_check;                  // a one-line report of the self-check that passed
  std::vector<std::string> not_converted;  // "layer: why" for layers the format could not hold, written as floats
  // What the exported model does not carry from the run (activation quantization: the formats hold
  // weights only, so the export scores like the run's weights with 16-bit activations).
  std::vector<std::string> warnings;
};

// Writes atomically (nothing is left at `out` on error or cancel) and self-checks before renaming.
ExportResult export_run(const ExportRequest& request, const std::function<void(const ExportProgress&)>& progress = {},
                        const StopToken& stop = StopToken());

}  // namespace tessera::api
