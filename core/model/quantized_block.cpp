#include "model/quantized_block.h"

#include "formats/tensor_bytes.h"
#include "io/safetensors.h"
#include "quant/grid_target.h"
#include "util/error.h"

namespace tessera::model {

void QuantizedBlock::set_float_parts(const model::DecoderBlockWeights& w) {
  auto f32 = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat32) : t; };
  input_norm = f32(w.input_norm);
  post_attention_norm = f32(w.post_attention_norm);
  q_bias = f32(w.q_bias);
  k_bias = f32(w.k_bias);
  v_bias = f32(w.v_bias);
  float_reference = w;
}

model::DecoderBlockWeights QuantizedBlock::dequantized(torch::Device device, torch::ScalarType dtype) const {
  model::DecoderBlockWeights w;
  auto put = [&](const torch::Tensor& t) { return t.defined() ? t.to(device, dtype) : t; };
  w.input_norm = put(input_norm);
  w.post_attention_norm = put(post_attention_norm);
  w.q_bias = put(q_bias);
  w.k_bias = put(k_bias);
  w.v_bias = put(v_bias);
  for (const auto& [kind, q] : linears) w.linear(kind) = q.dequantize().to(device, dtype);
  return w;
}

void QuantizedBlock::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  io::SafetensorsWriter writer;
  for (const auto& [k, v] : metadata) writer.set_metadata(k, v);
  for (const auto& [kind, q] : linears) {
    const std::string p = std::string(model::linear_name(kind)) + ".";
    if (!q.quantized()) {
      formats::add_tensor(writer, p + "f16", q.f16_weight);
      continue;
    }
    formats::add_tensor(writer, p + "codes", q.codes);
    formats::add_tensor(writer, p + "scale", q.scale);
    formats::add_tensor(writer, p + "zero", q.zero);
  }
  formats::add_tensor(writer, "input_norm", input_norm);
  formats::add_tensor(writer, "post_attention_norm", post_attention_norm);
  if (q_bias.defined()) {
    formats::add_tensor(writer, "q_bias", q_bias);
    formats::add_tensor(writer, "k_bias", k_bias);
    formats::add_tensor(writer, "v_bias", v_bias);
  }
  for (const auto& [name, t] : method_state) formats::add_tensor(writer, "state." + name, t);
  writer.write_to_file(path);
}

namespace {

// A block file must hold what its run's settings say, or every reader downstream (evaluation,
// every export and its self-check) would take a corrupted or foreign file for the run.
void check_linear(const quant::QuantizedLinear& q, const std::string& what) {
  if (q.codes.dim() != 2) throw Error(what + ".codes is not a matrix");
  const auto rows = q.codes.size(0), groups = q.spec.groups(q.codes.size(1));
  for (const auto* t : {&q.scale, &q.zero}) {
    if (t->scalar_type() != torch::kFloat32 || t->dim() != 2 || t->size(0) != rows || t->size(1) != groups)
      throw Error(what + (t == &q.scale ? ".scale" : ".zero") + " is not an fp32 [" + std::to_string(rows) + ", " +
                  std::to_string(groups) + "] tensor for " + q.spec.label());
  }
  const auto qmax = (std::int64_t{1} << q.spec.bits) - 1;
  if (q.codes.numel() > 0 && q.codes.max().item<std::int64_t>() > qmax)
    throw Error(what + ".codes holds " + std::to_string(q.codes.max().item<std::int64_t>()) +
                ", out of range for the run's " + std::to_string(q.spec.bits) + "-bit codes (0.." +
                std::to_string(qmax) + ")");
  if (!torch::isfinite(q.scale).all().item<bool>()) throw Error(what + ".scale is not finite");
  const auto z = q.zero;
  if (q.spec.nonuniform()) {  // IQ4_NL levels: no zero point (quant/codebook_grid.h)
    if (!(z == 0).all().item<bool>()) throw Error(what + ".zero must be 0 on IQ4_NL levels");
    return;
  }
  if (q.spec.superblock_offsets()) {  // offset / scale (quant/group_quantizer.h group_offsets)
    if (!(z >= 0).logical_and(torch::isfinite(z)).all().item<bool>())
      throw Error(what + ".zero holds values that are not finite non-negative offsets / scales");
    return;
  }
  if (!(z >= 0).logical_and(z <= static_cast<double>(qmax)).logical_and(z == torch::round(z)).all().item<bool>())
    throw Error(what + ".zero holds values that are not integer zero points in 0.." + std::to_string(qmax));
}

}  // namespace

QuantizedBlock QuantizedBlock::load(const std::string& path, const quant::WeightQuantSpec& spec) {
  io::SafetensorsFile file(path);
  QuantizedBlock b;
  auto get = [&](const std::string& name) { return formats::tensor_from_view(file.tensor(name)); };
  for (auto kind : model::kAllLinears) {
    const std::string p = std::string(model::linear_name(kind)) + ".";
    // Each Linear's grid follows from the run's spec and its width (quant::linear_grid), so the
    // file records only which Linears are unquantized: "<linear>.f16" instead of codes.
    const bool f16 = file.contains(p + "f16");
    const auto& shape = file.tensor(f16 ? p + "f16" : p + "codes").shape;
    const auto grid = quant::linear_grid(spec, shape.size() == 2 ? shape[1] : 0);
    if (f16 != !grid.quantized)
      throw Error(path + ": " + p +
                  (f16 ? "f16 is an unquantized weight, but the run's grid quantizes it"
                       : "codes are quantized, but the run's grid keeps it unquantized (" + grid.reason + ")"));
    if (f16) {
      quant::QuantizedLinear q;
      q.f16_weight = get(p + "f16");
      if (q.f16_weight.scalar_type() != torch::kFloat16 || q.f16_weight.dim() != 2)
        throw Error(path + ": " + p + "f16 must be an F16 matrix");
      b.linears[kind] = q;
      continue;
    }
    quant::QuantizedLinear q;
    q.spec = grid.spec;
    q.codes = get(p + "codes");
    q.scale = get(p + "scale");
    q.zero = get(p + "zero");
    if (q.codes.scalar_type() != torch::kUInt8) throw Error(path + ": " + p + "codes must be U8");
    check_linear(q, path + ": " + std::string(model::linear_name(kind)));
    b.linears[kind] = q;
  }
  b.input_norm = get("input_norm");
  b.post_attention_norm = get("post_attention_norm");
  if (file.contains("q_bias")) {
    b.q_bias = get("q_bias");
    b.k_bias = get("k_bias");
    b.v_bias = get("v_bias");
  }
  for (const auto& [name, view] : file.tensors()) {
    if (name.rfind("state.", 0) == 0) b.method_state[name.substr(6)] = formats::tensor_from_view(view);
  }
  return b;
}

}  // namespace tessera::model
