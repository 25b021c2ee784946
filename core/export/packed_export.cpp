#include "export/packed_export.h"

#include <filesystem>
#include <fstream>
#include <map>

#include "formats/packed_format.h"
#include "formats/tensor_bytes.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/hf_checkpoint.h"
#include "quant/grid_target.h"
#include "runtime/torch_runtime.h"
#include "text/tokenizer_loader.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace tessera::exporting {
namespace {

std::unique_ptr<formats::PackedFormat> format_for(const std::string& id, const quant::WeightQuantSpec& spec) {
  if (id == "gptq") return formats::make_gptq_format(spec, false);
  if (id == "gptq-v1") return formats::make_gptq_format(spec, true);
  if (id == "awq") return formats::make_awq_format(spec);
  throw Error("unknown packed export format \"" + id + "\" (gptq, gptq-v1, awq)");
}

// Why a Linear is not packed: a GGUF k-quant target's fallback (quant::linear_grid) leaves it on
// another grid than the run's, or unquantized, and a packed format has one grid for all; else
// the format's own shape refusal.
std::string linear_refusal(const RunSource& run, const formats::PackedFormat& format, const quant::QuantizedLinear& q) {
  if (!q.quantized() || !q.spec.same_grid(run.config.weight)) {
    const auto g = quant::linear_grid(run.config.weight, q.in_features());
    return "on llama.cpp's fallback type " + g.gguf_type + " for the GGUF target (" + g.reason + ")";
  }
  return format.shape_refusal(q);
}

std::string refusal(const RunSource& run, const formats::PackedFormat& format) {
  auto why = format.run_refusal(run.config.weight);
  if (!why.empty()) return why;
  std::string first_shape_refusal;
  bool any = false;
  run.for_each_linear([&](std::int64_t k, model::LinearKind kind, const quant::QuantizedLinear& q) {
    const auto module = hf_linear_module(k, kind);
    if (!why.empty()) return;
    const auto shape = linear_refusal(run, format, q);
    if (!shape.empty()) {
      if (first_shape_refusal.empty()) first_shape_refusal = module + ": " + shape;
      return;
    }
    any = true;
    const auto value = format.value_refusal(q);
    if (!value.empty()) why = module + ": " + value;
  });
  if (why.empty() && !any) why = "no layer of this model fits the format (" + first_shape_refusal + ")";
  return why;
}

}  // namespace

std::string packed_export_refusal(const RunSource& run, const std::string& id) {
  return refusal(run, *format_for(id, run.config.weight));
}

PackedCheck verify_packed(const RunSource& run, const std::string& folder) {
  const auto config_path = (fs::path(folder) / "config.json").string();
  const auto qc = io::read_json_file(config_path).value("quantization_config", nlohmann::json());
  const auto format = formats::packed_format_from_config(qc, config_path);
  if (!format) throw Error("self-check failed: " + config_path + " has no GPTQ/AWQ quantization_config");
  io::SafetensorsFile file((fs::path(folder) / "model.safetensors").string());
  PackedCheck check;
  std::vector<std::string> floats;
  run.for_each_linear([&](std::int64_t k, model::LinearKind kind, const quant::QuantizedLinear& q) {
    const auto module = hf_linear_module(k, kind);
    if (!file.contains(module + ".qweight")) {
      const auto got = formats::tensor_from_view(file.tensor(module + ".weight"));
      require_identical(got, q.dequantize().to(got.scalar_type()), module + ".weight (not converted)");
      floats.push_back(module);
      ++check.floats;
      return;
    }
    const auto u = format->unpack(file, module);
    require_identical(u.codes, q.codes, module + ".qweight (codes as the reader unpacks them)");
    require_identical(u.zero, q.zero, module + ".qzeros (zero points as the reader unpacks them)");
    const auto stored = formats::to_torch_dtype(file.tensor(module + ".scales").dtype, module + ".scales");
    check.scale_dtype = io::dtype_name(file.tensor(module + ".scales").dtype);
    const auto expected_scale = q.scale.to(stored).to(torch::kFloat32);
    require_identical(u.scale, expected_scale, module + ".scales (the run's scales in " + check.scale_dtype + ")");
    // The weight a reader computes, (q - z) * s in fp32, against the run's formula on the same scales.
    auto reference = q;
    reference.scale = expected_scale;
    require_identical(u.dequantize(), reference.dequantize(), module + " dequantized");
    ++check.packed;
  });
  nlohmann::json listed = qc.value("modules_to_not_convert", nlohmann::json::array());
  if (listed.is_null()) listed = nlohmann::json::array();
  if (listed != nlohmann::json(floats))
    throw Error("self-check failed: modules_to_not_convert in " + config_path + " is " + listed.dump() +
                " but the float layers are " + nlohmann::json(floats).dump());
  return check;
}

ExportReport export_packed(const std::string& run_dir, const std::string& out_folder, const std::string& id,
                           torch::ScalarType dtype, bool replace_existing, const StopToken& stop) {
  const auto run = RunSource::load(run_dir);
  const auto format = format_for(id, run.config.weight);
  const auto why = refusal(run, *format);
  if (!why.empty()) throw Error(format->label() + " cannot hold the run " + run_dir + " exactly: " + why);
  auto model = run.model();  // embeddings, norms and float layers

  ExportReport report;
  report.path = out_folder;
  report.format = id;
  report.dtype = runtime::dtype_label(dtype);
  std::map<std::string, std::pair<std::string, const quant::QuantizedLinear*>> packed;  // by "<module>.weight"
  std::vector<std::string> not_converted;
  run.for_each_linear([&](std::int64_t k, model::LinearKind kind, const quant::QuantizedLinear& q) {
    const auto module = hf_linear_module(k, kind);
    const auto shape = linear_refusal(run, *format, q);
    if (shape.empty()) {
      packed[module + ".weight"] = {module, &q};
    } else {
      not_converted.push_back(module);
      report.not_converted.push_back(module + ": " + shape);
    }
  });
  const auto manifest = run.manifest_text();
  const auto meta = nlohmann::json::parse(manifest);
  auto qc = format->quantization_config(not_converted, meta);
  if (format->id() != "awq" && !not_converted.empty()) {
    // transformers/optimum build a QuantLinear for every Linear unless the config names the quantized
    // ones per block; shape refusals are the same in every block, so one list describes them all.
    std::map<std::string, std::size_t> per_block;  // "self_attn.q_proj" -> in how many blocks it is packed
    for (const auto& [name, entry] : packed) ++per_block[entry.first.substr(entry.first.find('.', 13) + 1)];
    std::vector<std::string> names;
    bool uniform = true;
    for (const auto& [module, count] : per_block) {
      names.push_back(module);
      uniform = uniform && count == run.blocks.size();
    }
    if (uniform) qc["modules_in_block_to_quantize"] = nlohmann::json::array({nlohmann::json(names)});
  }

  model::HfSaveOptions options;
  options.metadata["tessera_run"] = manifest;
  options.tensor_digests = true;
  options.write_tensor = [&](const std::string& name, io::SafetensorsWriter& writer) {
    const auto it = packed.find(name);
    if (it == packed.end()) return false;
    stop.throw_if_stopped();
    format->pack(*it->second.second, it->second.first, dtype, writer);
    return true;
  };
  options.finish = [&](const std::string& tmp) {
    const std::string tokenizer = run.manifest.tokenizer;
    if (!tokenizer.empty() && fs::exists(tokenizer)) text::copy_tokenizer_files(tokenizer, tmp);
    const auto config_path = (fs::path(tmp) / "config.json").string();
    auto config = io::read_json_file(config_path);
    config["quantization_config"] = qc;
    {
      std::ofstream out(config_path, std::ios::trunc);
      out << config.dump(2) << "\n";
      if (!out) throw Error("cannot write " + config_path + " (disk full?)");
    }
    format->write_side_files(tmp, qc, meta);
    stop.throw_if_stopped();
    const auto check = verify_packed(run, tmp);
    report.tensors_checked = check.packed + check.floats;
    report.self_check = std::to_string(check.packed) + " packed layers re-read as " + format->label() +
                        " readers do: codes and zero points bit-identical, scales the run's in " + check.scale_dtype +
                        ", dequantized weights identical; " + std::to_string(check.floats) +
                        " layers not converted, their float weights identical to the run's in " + report.dtype;
    report.bytes = folder_bytes(tmp);
  };
  model::save_hf_checkpoint(model, out_folder, dtype, replace_existing, options);
  logger()->info("exported {} to {} as {} ({} bytes); self-check: {}", run_dir, out_folder, format->label(),
                 report.bytes, report.self_check);
  return report;
}

}  // namespace tessera::exporting
