#include "export/run_source.h"

#include <filesystem>

#include "formats/tensor_bytes.h"
#include "io/safetensors.h"
#include "pipeline/quantization_run.h"
#include "quant/grid_target.h"
#include "rundir/block_stats.h"
#include "rundir/run_directory.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace tessera::exporting {
namespace {

model::QuantizedBlock load_scales_and_zeros(const std::string& path, const quant::WeightQuantSpec& spec) {
  io::SafetensorsFile file(path);
  model::QuantizedBlock b;
  for (auto kind : model::kAllLinears) {
    const std::string p = std::string(model::linear_name(kind)) + ".";
    quant::QuantizedLinear q;
    if (file.contains(p + "f16")) {  // unquantized (QuantizedBlock::save); only its shape is needed
      q.f16_weight = torch::zeros({1, 1}, torch::kFloat16).expand(file.tensor(p + "f16").shape);
      b.linears[kind] = q;
      continue;
    }
    const auto& shape = file.tensor(p + "codes").shape;
    q.spec = quant::linear_grid(spec, shape.size() == 2 ? shape[1] : 0).spec;
    q.codes = torch::zeros({1, 1}, torch::kUInt8).expand(shape);
    q.scale = formats::tensor_from_view(file.tensor(p + "scale"));
    q.zero = formats::tensor_from_view(file.tensor(p + "zero"));
    b.linears[kind] = q;
  }
  return b;
}

}  // namespace

RunSource RunSource::load(const std::string& run_dir, bool codes) {
  const rundir::RunDirectory dir(run_dir);
  auto record = pipeline::read_run_manifest(run_dir, /*require_finished=*/true);
  RunSource s;
  s.run_dir = run_dir;
  s.manifest = std::move(record.manifest);
  s.config = std::move(record.config);
  s.has_codes_ = codes;
  for (std::int64_t k = 0; k < s.manifest.blocks; ++k)
    s.blocks.push_back(codes ? model::QuantizedBlock::load(dir.block_path(k), s.config.weight)
                             : load_scales_and_zeros(dir.block_path(k), s.config.weight));
  return s;
}

std::string RunSource::manifest_text() const {
  const rundir::RunDirectory dir(run_dir);
  nlohmann::json m = rundir::to_json(manifest);
  nlohmann::json errors = nlohmann::json::array();
  for (std::int64_t k = 0; k < manifest.blocks; ++k) {
    // Statistics are informative: a missing, damaged or foreign file (or entry) is left out, never
    // fatal and never copied into the export's metadata as it is (rundir/block_stats.h).
    const auto stats = rundir::read_block_stats(dir, k);
    if (!stats) continue;
    nlohmann::json layers = nlohmann::json::object();
    for (const auto& l : stats->layers) layers[l.layer] = l.rel_weight_error;
    auto number = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
    errors.push_back({{"block", k},
                      {"loss", number(stats->loss)},
                      {"loss_rtn", number(stats->loss_rtn)},
                      {"rel_weight_error", layers}});
  }
  m["layer_errors"] = errors;
  m.erase("config_identity");
  return m.dump();
}

model::LlamaModel RunSource::model() const {
  if (!has_codes_) throw Error("internal: RunSource::model() needs the run's codes (load with codes = true)");
  return pipeline::quantized_model_from_blocks(config, manifest.fingerprint.model_sha256, blocks, run_dir);
}

std::string hf_linear_module(std::int64_t block, model::LinearKind kind) {
  const bool attention = kind == model::LinearKind::Q || kind == model::LinearKind::K || kind == model::LinearKind::V ||
                         kind == model::LinearKind::O;
  return "model.layers." + std::to_string(block) + (attention ? ".self_attn." : ".mlp.") + model::linear_name(kind);
}

std::int64_t folder_bytes(const std::string& folder) {
  if (fs::is_regular_file(folder)) return static_cast<std::int64_t>(fs::file_size(folder));
  std::int64_t total = 0;
  for (const auto& e : fs::directory_iterator(folder)) total += static_cast<std::int64_t>(fs::file_size(e.path()));
  return total;
}

void require_identical(const torch::Tensor& got, const torch::Tensor& expected, const std::string& what) {
  if (got.sizes() == expected.sizes() && torch::equal(got, expected)) return;
  const auto bad = got.sizes() == expected.sizes() ? (got != expected).sum().item<std::int64_t>() : got.numel();
  throw Error("self-check failed: " + what + " differs from the run's codes in " + std::to_string(bad) + " of " +
              std::to_string(expected.numel()) + " elements");
}

}  // namespace tessera::exporting
