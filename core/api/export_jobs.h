#pragma once
// Exports of finished runs for the CLI and the GUI (torch-free header; see api/model_jobs.h).
#include <cstdint>
#include <string>

namespace tessera::api {

struct ExportRequest {
  std::string run_dir, out;
  std::string format = "hf";  // hf: fake-quant Hugging Face folder
  std::string dtype = "fp16";
  bool replace_existing = false;
};

struct ExportResult {
  std::string path, format, dtype;
  std::int64_t bytes = 0, tensors_checked = 0;
};

ExportResult export_run(const ExportRequest& request);

}  // namespace tessera::api
