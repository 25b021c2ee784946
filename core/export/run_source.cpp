#include "export/run_source.h"

#include <filesystem>
#include <fstream>

#include "formats/tensor_bytes.h"
#include "io/safetensors.h"
#include "pipeline/quantization_run.h"
#include "pipeline/run_directory.h"
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
    q.spec = spec;
    q.codes = torch::zeros({1, 1}, torch::kUInt8).expand(file.tensor(p + "codes").shape);
    q.scale = formats::tensor_from_view(file.tensor(p + "scale"));
    q.zero = formats::tensor_from_view(file.tensor(p + "zero"));
    b.linears[kind] = q;
  }
  return b;
}

}  // namespace

RunSource RunSource::load(const std::string& run_dir, bool codes) {
  pipeline::RunDirectory dir(run_dir);
  auto manifest = pipeline::read_run_manifest(run_dir, /*require_finished=*/true);
  RunSource s;
  s.run_dir = run_dir;
  s.manifest = std::move(manifest.json);
  s.config = std::move(manifest.config);
  s.has_codes_ = codes;
  for (std::int64_t k = 0; k < s.manifest.value("blocks", 0); ++k)
    s.blocks.push_back(codes ? model::QuantizedBlock::load(dir.block_path(k), s.config.weight)
                             : load_scales_and_zeros(dir.block_path(k), s.config.weight));
  return s;
}

std::string RunSource::manifest_text() const {
  pipeline::RunDirectory dir(run_dir);
  nlohmann::json m = manifest;
  nlohmann::json errors = nlohmann::json::array();
  for (std::int64_t k = 0; k < manifest.value("blocks", 0); ++k) {
    std::ifstream in(dir.stats_path(k));
    const auto stats = nlohmann::json::parse(in, nullptr, false);
    // Statistics are informative: a missing, damaged or foreign file (or entry) is left out, never
    // fatal and never copied into the export's metadata as it is.
    if (stats.is_discarded() || !stats.is_object()) continue;
    nlohmann::json layers = nlohmann::json::object();
    if (const auto it = stats.find("layers"); it != stats.end() && it->is_array())
      for (const auto& l : *it)
        if (l.is_object() && l.contains("layer") && l.at("layer").is_string() && l.contains("rel_weight_error") &&
            l.at("rel_weight_error").is_number())
          layers[l.at("layer").get<std::string>()] = l.at("rel_weight_error");
    auto number = [&](const char* key) {
      const auto it = stats.find(key);
      return it != stats.end() && it->is_number() ? *it : nlohmann::json();
    };
    errors.push_back(
        {{"block", k}, {"loss", number("loss")}, {"loss_rtn", number("loss_rtn")}, {"rel_weight_error", layers}});
  }
  m["layer_errors"] = errors;
  m.erase("config_identity");
  return m.dump();
}

model::LlamaModel RunSource::model() const {
  if (!has_codes_) throw Error("internal: RunSource::model() needs the run's codes (load with codes = true)");
  return pipeline::quantized_model_from_blocks(config, manifest.value("model_sha256", ""), blocks, run_dir);
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
