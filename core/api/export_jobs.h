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
  std::string id;      // the --format value: "hf", ...
  std::string label;   // "Fake-quant Hugging Face folder (safetensors)"
  bool available = false;
  std::string reason;  // why not, when !available ("AWQ-GEMM holds 4-bit only")
};

// The formats this build knows, each checked against the run in `run_dir`.
std::vector<ExportFormatInfo> export_formats_for_run(const std::string& run_dir);

struct ExportRequest {
  std::string run_dir, out;
  std::string format = "hf";  // hf: fake-quant Hugging Face folder
  std::string dtype = "fp16";
  bool replace_existing = false;
};

struct ExportProgress {
  std::string stage;  // "writing", "self-check", ...
  std::int64_t done = 0, total = 0;
};

struct ExportResult {
  std::string path, format, dtype;
  std::int64_t bytes = 0, tensors_checked = 0;
  std::string self_check;                  // a one-line report of the self-check that passed
  std::vector<std::string> not_converted;  // layers the format could not hold, written as floats
};

// Writes atomically (nothing is left at `out` on error or cancel) and self-checks before renaming.
ExportResult export_run(const ExportRequest& request, const std::function<void(const ExportProgress&)>& progress = {},
                        const StopToken& stop = StopToken());

}  // namespace tessera::api
