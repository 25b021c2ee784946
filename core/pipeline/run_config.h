#pragma once
// Everything that defines a quantization run, as JSON that round-trips. validate() checks every
// field and names the one at fault.
#include <cstdint>
#include <string>
#include <vector>

#include "methods/method_registry.h"
#include "quant/quant_spec.h"

namespace tessera::pipeline {

struct RunConfig {
  std::string model;           // llama2.c .bin or Hugging Face folder
  std::string tokenizer;       // "" = the one beside the model
  std::string calib;           // calibration corpus (text or JSON lines)
  std::string method = "rtn";  // a registered method id (methods/method_registry.h)
  quant::WeightQuantSpec weight;
  // "" or a GGUF grid target (quant/grid_target.h, e.g. "gguf-q4_0"): `weight` is then exactly that
  // block type's grid (bits, group 32, symmetric or not, fp16 scales) and the run exports to it
  // bit-exactly. Written to JSON only when set, so that other runs keep their identity.
  std::string target;
  int act_bits = 0;  // 0 = activations not quantized (A16)
  std::int64_t samples = 128;
  std::int64_t seq_len = 512;
  std::uint64_t seed = 42;
  std::string device = "cpu";
  std::int64_t batch_size = 8;  // calibration windows per forward pass
  // dtype of the matmuls while TesseraQ trains (parameters and loss stay fp32): auto = bf16 on
  // CUDA, fp32 on the CPU | fp32 | bf16. OmniQuant trains in fp32 on every device (its parameters
  // are few, and the measured 4x of bf16 matters for TesseraQ's 5,000 steps per block).
  std::string train_dtype = "auto";
  // The settings of every method (methods/<id>_settings.cpp declares them), in run.json as one
  // section per method ("awq", "omniquant", "tesseraq").
  methods::MethodSettings settings;

  // Every problem of the settings, each with the run.json key it is about ("tesseraq.lr", "wbits").
  std::vector<methods::SettingIssue> issues() const;
  // Throws the first of issues().
  void validate() const;
  // Sets `weight` to the target's grid; throws naming the target when it is unknown.
  void apply_target();
  // TesseraQ's matmuls in bf16: train_dtype "bf16", or "auto" on CUDA.
  bool trains_in_bf16(bool on_cuda) const { return train_dtype == "bf16" || (train_dtype == "auto" && on_cuda); }
  // Whether the run uses method `id`: it is the run's method, or the one its method starts from
  // (TesseraQ's init). Those methods' settings are part of the run's identity.
  bool uses_method(const std::string& id) const;
  std::string to_json_text() const;
  // Missing keys keep the value of `base`; a preset (resources/presets/*.json) is such a partial
  // config applied over the defaults or over the user's model and data choices.
  static RunConfig from_json_text(const std::string& text, const std::string& source, const RunConfig& base);
  static RunConfig from_json_text(const std::string& text, const std::string& source);
  static RunConfig from_file(const std::string& path);
  // The fields that change the numbers (not device placement or batch size of the forward pass).
  std::string identity_json() const;
};

}  // namespace tessera::pipeline
