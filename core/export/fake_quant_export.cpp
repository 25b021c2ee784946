#include "export/fake_quant_export.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/hf_checkpoint.h"
#include "model/tensor_bytes.h"
#include "pipeline/quantization_run.h"
#include "pipeline/quantized_block.h"
#include "pipeline/run_directory.h"
#include "runtime/torch_runtime.h"
#include "text/tokenizer_loader.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace tessera::exporting {
namespace {

const char* hf_linear_name(model::LinearKind kind) {
  switch (kind) {
    case model::LinearKind::Q: return "self_attn.q_proj.weight";
    case model::LinearKind::K: return "self_attn.k_proj.weight";
    case model::LinearKind::V: return "self_attn.v_proj.weight";
    case model::LinearKind::O: return "self_attn.o_proj.weight";
    case model::LinearKind::Gate: return "mlp.gate_proj.weight";
    case model::LinearKind::Up: return "mlp.up_proj.weight";
    case model::LinearKind::Down: return "mlp.down_proj.weight";
  }
  return "?";
}

nlohmann::json read_manifest(const pipeline::RunDirectory& dir) {
  std::ifstream in(dir.manifest_path());
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) throw Error(dir.manifest_path() + " is not valid JSON");
  return j;
}

// run.json plus each block's per-layer relative weight error and output loss.
std::string manifest_text(const pipeline::RunDirectory& dir, const nlohmann::json& manifest) {
  nlohmann::json m = manifest;
  nlohmann::json errors = nlohmann::json::array();
  for (std::int64_t k = 0; k < manifest.value("blocks", 0); ++k) {
    std::ifstream in(dir.stats_path(k));
    auto stats = nlohmann::json::parse(in, nullptr, false);
    if (stats.is_discarded()) continue;
    nlohmann::json layers = nlohmann::json::object();
    for (const auto& l : stats["layers"]) layers[l["layer"].get<std::string>()] = l["rel_weight_error"];
    errors.push_back({{"block", k}, {"loss", stats["loss"]}, {"loss_rtn", stats["loss_rtn"]}, {"rel_weight_error", layers}});
  }
  m["layer_errors"] = errors;
  m.erase("config_identity");
  return m.dump();
}

std::int64_t folder_bytes(const std::string& folder) {
  std::int64_t total = 0;
  for (const auto& e : fs::directory_iterator(folder)) total += static_cast<std::int64_t>(fs::file_size(e.path()));
  return total;
}

}  // namespace

std::int64_t verify_fake_quant_hf(const std::string& run_dir, const std::string& folder) {
  pipeline::RunDirectory dir(run_dir);
  const auto manifest = read_manifest(dir);
  const auto config = pipeline::RunConfig::from_json_text(manifest["config"].dump(), dir.manifest_path());
  io::SafetensorsFile file((fs::path(folder) / "model.safetensors").string());
  std::int64_t checked = 0;
  for (std::int64_t k = 0; k < manifest.value("blocks", 0); ++k) {
    const auto block = pipeline::QuantizedBlock::load(dir.block_path(k), config.weight);
    for (const auto& [kind, q] : block.linears) {
      const std::string name = "model.layers." + std::to_string(k) + "." + hf_linear_name(kind);
      const auto got = model::tensor_from_view(file.tensor(name));
      const auto expected = q.dequantize().to(got.scalar_type());
      if (got.sizes() != expected.sizes() || !torch::equal(got, expected)) {
        const auto bad = got.sizes() == expected.sizes() ? (got != expected).sum().item<std::int64_t>() : got.numel();
        throw Error("self-check failed: " + name + " in " + folder + " differs from the run's codes in " +
                    std::to_string(bad) + " of " + std::to_string(expected.numel()) + " elements");
      }
      ++checked;
    }
  }
  return checked;
}

ExportReport export_fake_quant_hf(const std::string& run_dir, const std::string& out_folder, torch::ScalarType dtype,
                                  bool replace_existing) {
  pipeline::RunDirectory dir(run_dir);
  auto model = pipeline::load_quantized_model(run_dir);  // throws for unfinished or changed runs
  const auto manifest = read_manifest(dir);
  const std::string tokenizer = manifest.value("tokenizer", "");
  ExportReport report;
  report.path = out_folder;
  report.format = "hf-fake-quant";
  report.dtype = runtime::dtype_label(dtype);
  model::HfSaveOptions options;
  options.metadata["tessera_run"] = manifest_text(dir, manifest);
  options.finish = [&](const std::string& tmp) {
    if (!tokenizer.empty() && fs::exists(tokenizer)) text::copy_tokenizer_files(tokenizer, tmp);
    report.tensors_checked = verify_fake_quant_hf(run_dir, tmp);
    report.bytes = folder_bytes(tmp);
  };
  model::save_hf_checkpoint(model, out_folder, dtype, replace_existing, options);
  logger()->info("exported {} to {} ({}, {} bytes); self-check: {} quantized weights bit-identical to the run's codes",
                 run_dir, out_folder, report.dtype, report.bytes, report.tensors_checked);
  return report;
}

}  // namespace tessera::exporting
