#pragma once
// What an export reports back to the API layer (api/export_jobs.h).
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::exporting {

// A tensor written in another type than the format's: a GGUF k-quant's per-tensor fallback, the
// type llama.cpp itself would use for it (quant/grid_target.h).
struct FallbackTensor {
  std::string tensor;               // "blk.0.ffn_down.weight"
  std::vector<std::int64_t> shape;  // ggml's ne: {in, out}
  std::string type;                 // "Q5_0", "F16"
  std::string reason;               // "input width 320 is not a multiple of 256 (Q4_K super-blocks)"
};

struct ExportReport {
  std::string path, format, dtype;
  std::int64_t bytes = 0;                  // size on disk of everything written
  std::int64_t tensors_checked = 0;        // quantized weights compared by the self-check
  std::string self_check;                  // one line: what the self-check compared and found identical
  std::vector<std::string> not_converted;  // "module: why" for layers written as float weights
  std::vector<FallbackTensor> fallbacks;   // tensors in a fallback type, bit-exact like the rest
};

}  // namespace tessera::exporting
