#include "export/fake_quant_export.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "export/run_source.h"
#include "formats/tensor_bytes.h"
#include "io/safetensors.h"
#include "model/hf_checkpoint.h"
#include "runtime/torch_runtime.h"
#include "text/tokenizer_loader.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace tessera::exporting {

std::int64_t verify_fake_quant_hf(const RunSource& run, const std::string& folder) {
  io::SafetensorsFile file((fs::path(folder) / "model.safetensors").string());
  std::int64_t checked = 0;
  run.for_each_linear([&](std::int64_t k, model::LinearKind kind, const quant::QuantizedLinear& q) {
    const std::string name = hf_linear_module(k, kind) + ".weight";
    const auto got = formats::tensor_from_view(file.tensor(name));
    require_identical(got, q.dequantize().to(got.scalar_type()), name + " in " + folder);
    ++checked;
  });
  return checked;
}

ExportReport export_fake_quant_hf(const std::string& run_dir, const std::string& out_folder, torch::ScalarType dtype,
                                  bool replace_existing) {
  const auto run = RunSource::load(run_dir);  // throws for unfinished runs
  auto model = run.model();                   // and for changed models
  const std::string tokenizer = run.manifest.tokenizer;
  ExportReport report;
  report.path = out_folder;
  report.format = "hf-fake-quant";
  report.dtype = runtime::dtype_label(dtype);
  model::HfSaveOptions options;
  options.metadata["tessera_run"] = run.manifest_text();
  options.tensor_digests = true;
  options.finish = [&](const std::string& tmp) {
    if (!tokenizer.empty() && fs::exists(tokenizer)) text::copy_tokenizer_files(tokenizer, tmp);
    report.tensors_checked = verify_fake_quant_hf(run, tmp);
    report.bytes = folder_bytes(tmp);
    report.self_check = std::to_string(report.tensors_checked) +
                        " quantized weights re-read and bit-identical to the run's codes in " + report.dtype;
  };
  model::save_hf_checkpoint(model, out_folder, dtype, replace_existing, options);
  logger()->info("exported {} to {} ({}, {} bytes); self-check: {} quantized weights bit-identical to the run's codes",
                 run_dir, out_folder, report.dtype, report.bytes, report.tensors_checked);
  return report;
}

}  // namespace tessera::exporting
