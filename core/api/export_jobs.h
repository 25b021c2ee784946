#pragma once
// Exports of finished runs for the CLI and the GUI (torch-free header; see api/model_jobs.h).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "api/job_types.h"
#include "util/stop_token.h"

namespace tessera::api {

// The formats this build knows, each checked against the run in `run_dir`.
std::vector<ExportFormatInfo> export_formats_for_run(const std::string& run_dir);

// Writes atomically (nothing is left at `out` on error or cancel) and self-checks before renaming.
ExportResult export_run(const ExportRequest& request, const std::function<void(const ExportProgress&)>& progress = {},
                        const StopToken& stop = StopToken());

}  // namespace tessera::api
