#pragma once
// Export of a finished run as a "fake-quant" Hugging Face folder: config.json + model.safetensors
// in fp32/fp16/bf16 where every quantized Linear's weight is the run's dequantized integer codes
// (the run's changed norms included), plus the tokenizer. Loadable by transformers'
// LlamaForCausalLM and by `tessera eval --model`. The run's manifest (config, seed, calibration
// hash and offsets, method, code version, per-layer errors) goes into the safetensors metadata.
// Before the folder is renamed into place, a self-check re-reads it and compares every quantized
// weight bit for bit with the run's codes; a folder that fails is never left behind.
#include <torch/torch.h>

#include <string>

#include "export/export_report.h"
#include "export/run_source.h"

namespace tessera::exporting {

ExportReport export_fake_quant_hf(const std::string& run_dir, const std::string& out_folder, torch::ScalarType dtype,
                                  bool replace_existing);

// Compares every quantized Linear weight in `folder`'s model.safetensors with the run's codes
// dequantized in that tensor's dtype; returns how many were compared, throws naming the first
// tensor that differs.
std::int64_t verify_fake_quant_hf(const RunSource& run, const std::string& folder);

}  // namespace tessera::exporting
