// AWQ "GEMM" checkpoints (AutoAWQ WQLinear_GEMM: awq/modules/linear/gemm.py,
// awq/utils/packing_utils.py): qweight int32 [K, N/8] and qzeros int32 [K/g, N/8] packed along N in
// the interleaved nibble order [0, 2, 4, 6, 1, 3, 5, 7], true zero points, scales [K/g, N]; 4-bit
// only, no g_idx.
#include <filesystem>
#include <fstream>

#include "formats/bit_packing.h"
#include "formats/packed_format.h"
#include "formats/tensor_bytes.h"
#include "util/error.h"
#include "util/version.h"

namespace fs = std::filesystem;

namespace tessera::formats {
namespace {

// uint8 [R, C] (C a multiple of 8) to int32 [R, C/8] in AWQ's order.
torch::Tensor awq_pack_rows(const torch::Tensor& values) {
  const auto v = values.to(torch::kUInt8).contiguous();
  const auto rows = v.size(0), words = v.size(1) / 8;
  auto out = torch::empty({rows, words}, torch::kInt32);
  auto* dst = reinterpret_cast<std::uint32_t*>(out.data_ptr<std::int32_t>());
  const auto* src = v.data_ptr<std::uint8_t>();
  for (std::int64_t i = 0; i < rows * words; ++i) dst[i] = awq_pack_word(src + 8 * i);
  return out;
}

torch::Tensor awq_unpack_rows(const torch::Tensor& words) {
  const auto w = words.contiguous();
  auto out = torch::empty({w.size(0), w.size(1) * 8}, torch::kUInt8);
  const auto* src = reinterpret_cast<const std::uint32_t*>(w.data_ptr<std::int32_t>());
  auto* dst = out.data_ptr<std::uint8_t>();
  for (std::int64_t i = 0; i < w.numel(); ++i) awq_unpack_word(src[i], dst + 8 * i);
  return out;
}

class AwqFormat : public PackedFormat {
 public:
  explicit AwqFormat(const quant::WeightQuantSpec& spec) : spec_(spec) {}
  std::string id() const override { return "awq"; }
  std::string label() const override { return "AWQ-GEMM"; }

  std::string run_refusal(const quant::WeightQuantSpec& spec) const override {
    if (spec.bits != 4) return "AWQ-GEMM holds 4-bit only; this run has " + std::to_string(spec.bits) + "-bit codes";
    if (spec.group_size <= 0) return "AWQ-GEMM needs a group size; this run is per-channel (use gptq)";
    return "";
  }

  std::string shape_refusal(const quant::QuantizedLinear& q) const override {
    const auto n = q.out_features(), k = q.in_features(), g = spec_.group_size;
    if (k % g != 0)
      return "input dimension " + std::to_string(k) + " is not a multiple of the group size " + std::to_string(g);
    if (n % 8 != 0) return "output dimension " + std::to_string(n) + " is not a multiple of 8 (8 nibbles per word)";
    return "";
  }

  std::string value_refusal(const quant::QuantizedLinear& q) const override { return zero_point_refusal(q, 4); }

  void pack(const quant::QuantizedLinear& q, const std::string& module, torch::ScalarType scale_dtype,
            io::SafetensorsWriter& writer) const override {
    const auto qweight = awq_pack_rows(q.codes.t().contiguous());
    const auto qzeros = awq_pack_rows(q.zero.t().contiguous());
    const auto scales = q.scale.t().contiguous().to(scale_dtype);
    add_tensor(writer, module + ".qweight", qweight);
    add_tensor(writer, module + ".qzeros", qzeros);
    add_tensor(writer, module + ".scales", scales);
  }

  quant::QuantizedLinear unpack(const io::SafetensorsFile& file, const std::string& module) const override {
    const auto& qw = file.tensor(module + ".qweight");
    if (qw.shape.size() != 2) throw Error(file.path() + ": " + module + ".qweight is not a matrix");
    const std::int64_t k = qw.shape[0], n = qw.shape[1] * 8, g = spec_.group_size;
    if (k % g != 0)
      throw Error(file.path() + ": " + module + ".qweight has " + std::to_string(k) +
                  " inputs, not a multiple of group_size " + std::to_string(g));
    quant::QuantizedLinear q;
    q.spec = spec_;
    q.codes = awq_unpack_rows(int32_tensor(file, module + ".qweight", {k, n / 8})).t().contiguous();
    q.zero =
        awq_unpack_rows(int32_tensor(file, module + ".qzeros", {k / g, n / 8})).t().contiguous().to(torch::kFloat32);
    q.scale = float_tensor(file, module + ".scales", {k / g, n}).t().contiguous();
    return q;
  }

  nlohmann::json quantization_config(const std::vector<std::string>& not_converted,
                                     const nlohmann::json& meta) const override {
    (void)meta;  // AWQ's config has no place for it; it goes into quantize_config.json
    return {
        {"quant_method", "awq"},
        {"zero_point", true},
        {"group_size", spec_.group_size},
        {"bits", 4},
        {"version", "gemm"},
        {"modules_to_not_convert", not_converted.empty() ? nlohmann::json(nullptr) : nlohmann::json(not_converted)}};
  }

  void write_side_files(const std::string& folder, const nlohmann::json& config,
                        const nlohmann::json& meta) const override {
    // vLLM also reads quant_config.json / quantize_config.json with AutoAWQ's key names.
    nlohmann::json side = config;
    side["w_bit"] = 4;
    side["q_group_size"] = spec_.group_size;
    side["meta"] = meta;
    const auto path = (fs::path(folder) / "quantize_config.json").string();
    std::ofstream out(path);
    out << side.dump(2) << "\n";
    if (!out) throw Error("cannot write " + path + " (disk full?)");
  }

 private:
  quant::WeightQuantSpec spec_;
};

}  // namespace

std::unique_ptr<PackedFormat> make_awq_format(const quant::WeightQuantSpec& spec) {
  return std::make_unique<AwqFormat>(spec);
}

}  // namespace tessera::formats
