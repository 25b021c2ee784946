#pragma once
// Every export format in one table: its id (the --format value), label, why it cannot hold a run,
// and its writer. Each writer builds the output beside the destination, reads it back with the
// format's own reader conventions (the self-check), and only then puts it in place; `tessera eval
// --model` imports every format (model/model_loader.h). Adding a format: its writer and checker
// in a file of this folder, one entry in export_formats.cpp (docs/adding-an-export-format.md).
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "export/export_report.h"
#include "export/run_source.h"
#include "util/stop_token.h"

namespace tessera::exporting {

struct ExportJob {
  std::string run_dir, out;
  torch::ScalarType dtype = torch::kFloat32;  // of float tensors and scales, where the format lets it choose
  bool replace_existing = false;
};

struct ExportFormat {
  std::string id, label;
  // "" when the format holds the run exactly, else why not; reads settings and scales, not codes.
  std::function<std::string(const RunSource&)> refusal;
  std::function<ExportReport(const ExportJob&, const StopToken&)> write;
};

const std::vector<ExportFormat>& export_formats();              // in the order the GUI lists them
const ExportFormat* find_export_format(const std::string& id);  // nullptr when unknown
std::string export_format_ids();                                // "hf, gptq, ..."

}  // namespace tessera::exporting
