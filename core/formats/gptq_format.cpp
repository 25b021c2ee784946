// GPTQ checkpoints (AutoGPTQ / GPTQModel layout: pack() in auto_gptq/nn_modules/qlinear/
// qlinear_cuda_old.py, the buffers of gptqmodel/nn_modules/qlinear/__init__.py):
// qweight int32 [K*b/32, N] packed along K, qzeros int32 [G, N*b/32] packed along N, scales [G, N],
// g_idx int32 [K] = k / g. "gptq_v2" stores the true zero point; "gptq" (v1) stores zero - 1 and
// every reader adds 1 back, so a zero point of 0 cannot be stored in v1.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>

#include "formats/bit_packing.h"
#include "formats/packed_format.h"
#include "formats/tensor_bytes.h"
#include "util/error.h"
#include "util/version.h"

namespace fs = std::filesystem;

namespace tessera::formats {

namespace {

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// The tensor, refused naming it unless its dtype is one of `dtypes` and its shape matches (-1: any).
const io::TensorView& checked_view(const io::SafetensorsFile& file, const std::string& name,
                                   std::initializer_list<io::DType> dtypes, const std::vector<std::int64_t>& shape) {
  const auto& v = file.tensor(name);
  if (std::find(dtypes.begin(), dtypes.end(), v.dtype) == dtypes.end())
    throw Error(file.path() + ": tensor \"" + name + "\" has dtype " + io::dtype_name(v.dtype));
  bool ok = v.shape.size() == shape.size();
  for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || shape[i] == v.shape[i];
  if (!ok)
    throw Error(file.path() + ": tensor \"" + name + "\" has shape " + shape_text(v.shape) + ", expected " +
                shape_text(shape));
  return v;
}

// Packs each row of a uint8 [R, C] tensor into a bit stream: int32 [R, C*b/32].
torch::Tensor pack_rows(const torch::Tensor& values, int bits) {
  const auto v = values.to(torch::kUInt8).contiguous();
  const auto rows = v.size(0), cols = v.size(1);
  auto out = torch::empty({rows, cols * bits / 32}, torch::kInt32);
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto words = pack_bitstream(v.data_ptr<std::uint8_t>() + r * cols, static_cast<std::size_t>(cols), bits);
    std::memcpy(out.data_ptr<std::int32_t>() + r * out.size(1), words.data(), words.size() * 4);
  }
  return out;
}

// The inverse: int32 [R, W] to uint8 [R, W*32/b].
torch::Tensor unpack_rows(const torch::Tensor& words, int bits) {
  const auto w = words.contiguous();
  const auto rows = w.size(0), count = w.size(1) * 32 / bits;
  auto out = torch::empty({rows, count}, torch::kUInt8);
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto values =
        unpack_bitstream(reinterpret_cast<const std::uint32_t*>(w.data_ptr<std::int32_t>()) + r * w.size(1),
                         static_cast<std::size_t>(count), bits);
    std::memcpy(out.data_ptr<std::uint8_t>() + r * count, values.data(), values.size());
  }
  return out;
}

class GptqFormat : public PackedFormat {
 public:
  GptqFormat(const quant::WeightQuantSpec& spec, bool v1) : spec_(spec), v1_(v1) {}
  std::string id() const override { return v1_ ? "gptq-v1" : "gptq"; }
  std::string label() const override {
    return v1_ ? "GPTQ v1 (checkpoint_format gptq)" : "GPTQ (checkpoint_format gptq_v2)";
  }

  std::string run_refusal(const quant::WeightQuantSpec& spec) const override {
    if (spec.bits != 2 && spec.bits != 3 && spec.bits != 4 && spec.bits != 8)
      return "GPTQ holds 2-, 3-, 4- or 8-bit codes; this run has " + std::to_string(spec.bits) + "-bit codes";
    return "";
  }

  std::string shape_refusal(const quant::QuantizedLinear& q) const override {
    const auto n = q.out_features(), k = q.in_features(), g = spec_.effective_group(k);
    const int b = spec_.bits;
    if (k % g != 0)
      return "input dimension " + std::to_string(k) + " is not a multiple of the group size " + std::to_string(g);
    if ((k * b) % 32 != 0)
      return "input dimension " + std::to_string(k) + " x " + std::to_string(b) +
             " bits does not fill whole 32-bit qweight words" + (b == 3 ? " (3-bit needs a multiple of 32)" : "");
    if ((n * b) % 32 != 0)
      return "output dimension " + std::to_string(n) + " x " + std::to_string(b) +
             " bits does not fill whole 32-bit qzeros words" + (b == 3 ? " (3-bit needs a multiple of 32)" : "");
    return "";
  }

  std::string value_refusal(const quant::QuantizedLinear& q) const override {
    auto why = zero_point_refusal(q, spec_.bits);
    if (!why.empty()) return why;
    if (v1_) {
      const auto zeros = (q.zero < 1).sum().item<std::int64_t>();
      if (zeros > 0)
        return "GPTQ v1 stores zero - 1 and cannot hold a zero point of 0 (" + std::to_string(zeros) +
               (zeros == 1 ? " group has" : " groups have") + " zero 0); use gptq (gptq_v2), which stores true zeros";
    }
    return "";
  }

  void pack(const quant::QuantizedLinear& q, const std::string& module, torch::ScalarType scale_dtype,
            io::SafetensorsWriter& writer) const override {
    const auto k = q.in_features(), g = spec_.effective_group(k);
    // Streams run along K for qweight (each output column n is one stream) and along N for qzeros.
    const auto qweight = pack_rows(q.codes, spec_.bits).t().contiguous();
    const auto stored_zero = v1_ ? q.zero - 1 : q.zero;
    const auto qzeros = pack_rows(stored_zero.t().contiguous(), spec_.bits);
    const auto scales = q.scale.t().contiguous().to(scale_dtype);
    const auto g_idx = torch::arange(k, torch::kInt64).div(g, "floor").to(torch::kInt32);
    add_tensor(writer, module + ".qweight", qweight);
    add_tensor(writer, module + ".qzeros", qzeros);
    add_tensor(writer, module + ".scales", scales);
    add_tensor(writer, module + ".g_idx", g_idx);
  }

  quant::QuantizedLinear unpack(const io::SafetensorsFile& file, const std::string& module) const override {
    const int b = spec_.bits;
    const auto& qw = checked_view(file, module + ".qweight", {io::DType::I32}, {-1, -1});
    const std::int64_t n = qw.shape[1], k = qw.shape[0] * 32 / b;
    const auto g = spec_.effective_group(k);
    const auto groups = (k + g - 1) / g;
    const auto qweight = int32_tensor(file, module + ".qweight", {k * b / 32, n});
    const auto qzeros = int32_tensor(file, module + ".qzeros", {groups, n * b / 32});
    const auto g_idx = int32_tensor(file, module + ".g_idx", {k});
    const auto expected_g_idx = torch::arange(k, torch::kInt64).div(g, "floor").to(torch::kInt32);
    if (!torch::equal(g_idx, expected_g_idx))
      throw Error(file.path() + ": " + module + ".g_idx is not k / " + std::to_string(g) +
                  " (act-order checkpoints are not supported)");
    quant::QuantizedLinear q;
    q.spec = spec_;
    q.codes = unpack_rows(qweight.t().contiguous(), b).narrow(1, 0, k).contiguous();
    auto zero = unpack_rows(qzeros, b).narrow(1, 0, n).t().contiguous().to(torch::kFloat32);
    q.zero = v1_ ? zero + 1 : zero;  // v1 readers add 1 back (vLLM / ExLlama gptq_gemm, AutoGPTQ)
    q.scale = float_tensor(file, module + ".scales", {groups, n}).t().contiguous();
    return q;
  }

  nlohmann::json quantization_config(const std::vector<std::string>& not_converted,
                                     const nlohmann::json& meta) const override {
    nlohmann::json dynamic = nlohmann::json::object();
    // GPTQModel's way of excluding a module: a negative "-:" rule matching its name.
    for (const auto& m : not_converted) {
      std::string escaped;
      for (char c : m) escaped += (c == '.' ? std::string("\\.") : std::string(1, c));
      dynamic["-:" + escaped] = nlohmann::json::object();
    }
    nlohmann::json m = meta;
    m["quantizer"] = {std::string("tessera:") + kVersion};
    return {{"quant_method", "gptq"},
            {"bits", spec_.bits},
            {"group_size", spec_.group_size <= 0 ? -1 : spec_.group_size},
            {"desc_act", false},
            {"sym", spec_.symmetric},
            {"lm_head", false},
            {"true_sequential", true},
            {"checkpoint_format", v1_ ? "gptq" : "gptq_v2"},
            {"pack_dtype", "int32"},
            {"modules_to_not_convert", not_converted},
            {"dynamic", dynamic},
            {"meta", m}};
  }

  void write_side_files(const std::string& folder, const nlohmann::json& config,
                        const nlohmann::json& meta) const override {
    (void)meta;  // already in the config's "meta"
    std::ofstream out(fs::path(folder) / "quantize_config.json");
    out << config.dump(2) << "\n";
    if (!out) throw Error("cannot write " + (fs::path(folder) / "quantize_config.json").string() + " (disk full?)");
  }

 private:
  quant::WeightQuantSpec spec_;
  bool v1_;
};

}  // namespace

std::string zero_point_refusal(const quant::QuantizedLinear& q, int bits) {
  const double maxq = (1 << bits) - 1;
  if ((q.zero != q.zero.round()).any().item<bool>() || (q.zero < 0).any().item<bool>() ||
      (q.zero > maxq).any().item<bool>())
    return "zero points are not integers in [0, " + std::to_string(static_cast<int>(maxq)) + "]";
  return "";
}

torch::Tensor int32_tensor(const io::SafetensorsFile& file, const std::string& name,
                           const std::vector<std::int64_t>& shape) {
  const auto& v = checked_view(file, name, {io::DType::I32}, shape);
  return torch::from_blob(const_cast<std::uint8_t*>(v.data), v.shape, torch::kInt32).clone();
}

torch::Tensor float_tensor(const io::SafetensorsFile& file, const std::string& name,
                           const std::vector<std::int64_t>& shape) {
  const auto& v = checked_view(file, name, {io::DType::F32, io::DType::F16, io::DType::BF16}, shape);
  return float32_tensor_from_view(v);
}

std::unique_ptr<PackedFormat> make_gptq_format(const quant::WeightQuantSpec& spec, bool v1) {
  return std::make_unique<GptqFormat>(spec, v1);
}

std::unique_ptr<PackedFormat> packed_format_from_config(const nlohmann::json& qc, const std::string& source) {
  if (!qc.is_object() || !qc.contains("quant_method")) return nullptr;
  const auto method = qc["quant_method"].get<std::string>();
  if (method != "gptq" && method != "awq") return nullptr;
  // Integers only, checked before use: "bits": 3.9 must not become 3, a group size of 0 must not
  // reach a division.
  auto integer = [&](const char* key, const char* alias, std::int64_t fallback) {
    const auto* k = qc.contains(key) ? key : qc.contains(alias) ? alias : nullptr;
    if (k == nullptr) return fallback;
    if (!qc[k].is_number_integer())
      throw Error(source + ": quantization_config \"" + k + "\" is " + qc[k].dump() + ", expected an integer");
    return qc[k].get<std::int64_t>();
  };
  quant::WeightQuantSpec spec;
  const auto bits = integer("bits", "w_bit", 4);
  if (bits < 2 || bits > 8) throw Error(source + ": quantization_config bits " + std::to_string(bits) + " is not 2..8");
  spec.bits = static_cast<int>(bits);
  const auto g = integer("group_size", "q_group_size", 128);
  if (g == 0 || g < -1)
    throw Error(source + ": quantization_config group_size " + std::to_string(g) +
                " is neither positive nor -1 (per-channel)");
  spec.group_size = g < 0 ? 0 : g;
  spec.symmetric = qc.value("sym", false);
  if (method == "awq") {
    if (spec.group_size <= 0) throw Error(source + ": AWQ needs a positive group_size, not " + std::to_string(g));
    const auto version = qc.value("version", std::string("gemm"));
    if (version != "gemm" && version != "GEMM")
      throw Error(source + ": AWQ version \"" + version + "\" is not supported (only gemm)");
    if (!qc.value("zero_point", true)) throw Error(source + ": AWQ without zero points is not supported");
    return make_awq_format(spec);
  }
  if (qc.value("desc_act", false)) throw Error(source + ": GPTQ with desc_act (act-order) is not supported");
  const auto format = qc.value("checkpoint_format", qc.value("format", std::string("gptq")));
  if (format != "gptq" && format != "gptq_v2")
    throw Error(source + ": GPTQ checkpoint_format \"" + format + "\" is not supported (gptq or gptq_v2)");
  auto f = make_gptq_format(spec, format == "gptq");
  const auto refusal = f->run_refusal(spec);
  if (!refusal.empty()) throw Error(source + ": " + refusal);
  return f;
}

}  // namespace tessera::formats
