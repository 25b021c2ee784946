#pragma once
// A quantized-checkpoint format that stores a Linear as packed integer tensors in a Hugging Face
// folder (GPTQ v1/v2, AWQ-GEMM): how it packs a layer's codes, how a reader of that format unpacks
// them again (the self-check and the importer use the reader's conventions, not the writer's), and
// which layers and runs it cannot hold exactly.
#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "quant/quantized_linear.h"

namespace tessera::formats {

class PackedFormat {
 public:
  virtual ~PackedFormat() = default;
  virtual std::string id() const = 0;     // "gptq", "gptq-v1", "awq"
  virtual std::string label() const = 0;  // for messages: "GPTQ (gptq_v2)"
  // Why the format cannot hold a run with these settings at all; "" when it can.
  virtual std::string run_refusal(const quant::WeightQuantSpec& spec) const = 0;
  // Why one layer's shape does not fit (the layer is then written as a float weight); "" when it fits.
  virtual std::string shape_refusal(const quant::QuantizedLinear& q) const = 0;
  // Why the layer's code values cannot be stored exactly (refuses the whole export); "" when they can.
  virtual std::string value_refusal(const quant::QuantizedLinear& q) const {
    (void)q;
    return "";
  }
  // Adds the layer's tensors ("<module>.qweight", ...) with scales in `scale_dtype`.
  virtual void pack(const quant::QuantizedLinear& q, const std::string& module, torch::ScalarType scale_dtype,
                    io::SafetensorsWriter& writer) const = 0;
  // Reads "<module>.*" back as a reader of the format does: codes uint8 [N, K], zero and scale
  // float32 [N, G]. Throws naming the tensor when anything is inconsistent.
  virtual quant::QuantizedLinear unpack(const io::SafetensorsFile& file, const std::string& module) const = 0;
  // config.json's "quantization_config"; `meta` (the run manifest) goes where the format's tools
  // keep such information.
  virtual nlohmann::json quantization_config(const std::vector<std::string>& not_converted,
                                             const nlohmann::json& meta) const = 0;
  // Extra config files beside config.json (quantize_config.json, ...), written into `folder`.
  virtual void write_side_files(const std::string& folder, const nlohmann::json& quantization_config,
                                const nlohmann::json& meta) const = 0;
};

// GPTQ with `checkpoint_format` "gptq_v2" (true zeros) or "gptq" (v1: zero - 1 stored).
std::unique_ptr<PackedFormat> make_gptq_format(const quant::WeightQuantSpec& spec, bool v1);
// AWQ-GEMM (4-bit, interleaved, true zeros).
std::unique_ptr<PackedFormat> make_awq_format(const quant::WeightQuantSpec& spec);
// The format a folder's config.json "quantization_config" describes, or nullptr when the folder is
// not a GPTQ/AWQ checkpoint. Throws for GPTQ/AWQ variants this reader does not handle.
std::unique_ptr<PackedFormat> packed_format_from_config(const nlohmann::json& quantization_config,
                                                        const std::string& source);

// Why the layer's zero points are not integers in [0, 2^bits - 1], the range packed formats store;
// "" when they are.
std::string zero_point_refusal(const quant::QuantizedLinear& q, int bits);

// Reads an I32 tensor as raw 32-bit words (GPTQ/AWQ store uint32 bit patterns in int32).
torch::Tensor int32_tensor(const io::SafetensorsFile& file, const std::string& name,
                           const std::vector<std::int64_t>& shape);
torch::Tensor float_tensor(const io::SafetensorsFile& file, const std::string& name,
                           const std::vector<std::int64_t>& shape);

}  // namespace tessera::formats
