#pragma once
// What an export reports back to the API layer (api/export_jobs.h).
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::exporting {

struct ExportReport {
  std::string path, format, dtype;
  std::int64_t bytes = 0;                  // size on disk of everything written
  std::int64_t tensors_checked = 0;        // quantized weights compared by the self-check
  std::string self_check;                  // one line: what the self-check compared and found identical
  std::vector<std::string> not_converted;  // "module: why" for layers written as float weights
};

}  // namespace tessera::exporting
