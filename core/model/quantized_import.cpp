#include "model/quantized_import.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/packed_format.h"
#include "io/safetensors.h"
#include "model/hf_checkpoint.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace tessera::model {
namespace {

nlohmann::json quantization_config(const std::string& folder) {
  std::ifstream in(fs::path(folder) / "config.json");
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return nlohmann::json();
  return j.value("quantization_config", nlohmann::json());
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

bool is_packed_checkpoint(const std::string& folder) {
  const auto qc = quantization_config(folder);
  if (!qc.is_object()) return false;
  const auto method = qc.value("quant_method", std::string());
  return method == "gptq" || method == "awq";
}

model::LlamaModel load_packed_checkpoint(const std::string& folder) {
  const auto source = (fs::path(folder) / "config.json").string();
  const auto format = formats::packed_format_from_config(quantization_config(folder), source);
  if (!format) throw Error(folder + " is not a GPTQ or AWQ checkpoint");
  const auto weights = (fs::path(folder) / "model.safetensors").string();
  if (!fs::exists(weights)) throw Error(folder + ": no model.safetensors (sharded GPTQ/AWQ folders are not supported)");
  const io::SafetensorsFile file(weights);
  return model::load_hf_checkpoint(folder, [&](const std::string& name) {
    if (!ends_with(name, ".weight")) return torch::Tensor();
    const auto module = name.substr(0, name.size() - 7);
    if (!file.contains(module + ".qweight")) return torch::Tensor();
    return format->unpack(file, module).dequantize();
  });
}

}  // namespace tessera::model
