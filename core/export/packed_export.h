#pragma once
// Export of a finished run as a GPTQ (gptq_v2 or v1) or AWQ-GEMM Hugging Face folder, packed
// directly from the run's integer codes. Layers whose shape the format cannot hold are written as
// their dequantized float weight and listed in "modules_to_not_convert" (and GPTQModel's "dynamic"
// exclusions), so the folder as a whole still evaluates exactly like the run. The run manifest goes
// into the safetensors metadata and the config's "meta"; every tensor's SHA-256 is recorded. Before
// the folder is renamed into place, the self-check re-reads it with the format's reader conventions.
#include <torch/torch.h>

#include <string>

#include "export/export_report.h"
#include "export/run_source.h"
#include "util/stop_token.h"

namespace tessera::exporting {

// "" when format `id` ("gptq", "gptq-v1", "awq") can hold the run exactly, else why not.
std::string packed_export_refusal(const RunSource& run, const std::string& id);

// Scales are stored in `dtype` (fp16 as the engines expect, or fp32 for bit-identical numbers);
// float tensors too.
ExportReport export_packed(const std::string& run_dir, const std::string& out_folder, const std::string& id,
                           torch::ScalarType dtype, bool replace_existing, const StopToken& stop = StopToken());

struct PackedCheck {
  std::int64_t packed = 0, floats = 0;  // layers compared as packed codes / as float weights
  std::string scale_dtype;              // how the scales are stored ("F16", "F32")
};
// Re-reads `folder` the way a reader of its format does and compares every layer with the run:
// codes and zero points bit-identical, scales identical to the run's rounded to the stored dtype,
// the dequantized weight identical, float layers identical to the run's dequantized codes in their
// dtype, and the exclusion list matching the float layers. Throws naming the first mismatch.
PackedCheck verify_packed(const RunSource& run, const std::string& folder);

}  // namespace tessera::exporting
