#pragma once
// Shared by the export tests: small RTN runs of stories260K, perplexity of a run or an exported
// model with the same protocol, the format list entry for a run, and flipping one bit of a tensor.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "api/export_jobs.h"
#include "api/model_jobs.h"
#include "export/run_source.h"
#include "io/safetensors.h"
#include "pipeline/quantization_run.h"
#include "rundir/run_directory.h"
#include "test_data.h"

namespace tessera_test {

// An RTN run of stories260K, or of `model` under shared/data (`bits`, `group` (0 = per channel),
// 4 calibration samples of 64 tokens) in a fresh folder named after `name`.
inline std::string rtn_run(int bits, const std::string& name, std::int64_t group = 32,
                           const std::string& model = "models/stories260K/stories260K.bin") {
  tessera::pipeline::RunConfig c;
  c.model = shared_data(model);
  c.calib = shared_data("text/tinystories/train-sample.txt");
  c.method = "rtn";
  c.weight = {bits, group, false};
  c.samples = 4;
  c.seq_len = 64;
  const auto dir = fresh_temp_dir(name) + "/run";
  tessera::rundir::NullEventSink quiet;
  tessera::pipeline::run_quantization(c, dir, false, quiet);
  return dir;
}

// A run of stories260K (or `model`) made with `--target target` (quant/grid_target.h), whose grid
// is exactly what that GGUF block type stores; same calibration as rtn_run.
// `model`: relative to shared/data, or an absolute path (a synthetic checkpoint).
inline std::string target_run(const std::string& target, const std::string& method = "rtn",
                              const std::string& model = "models/stories260K/stories260K.bin") {
  tessera::pipeline::RunConfig c;
  c.model = std::filesystem::path(model).is_absolute() ? model : shared_data(model);
  c.calib = shared_data("text/tinystories/train-sample.txt");
  c.method = method;
  c.target = target;
  c.apply_target();
  c.samples = 4;
  c.seq_len = 64;
  c.settings.set("tesseraq", "schedule", "0.5,0.2,0");  // a short TesseraQ schedule: PAR still chooses every code
  c.settings.set("tesseraq", "steps", 10);
  const auto dir = fresh_temp_dir("target-" + target + "-" + method) + "/run";
  tessera::rundir::NullEventSink quiet;
  tessera::pipeline::run_quantization(c, dir, false, quiet);
  return dir;
}

// Perplexity of a run (run_dir) or of a model file or folder (model), same protocol.
inline double perplexity(const std::string& run_dir, const std::string& model, const std::string& text) {
  tessera::api::EvalRequest e;
  e.text_path = text;
  e.run_dir = run_dir;
  e.model_path = model;
  return tessera::api::evaluate_perplexity(e).perplexity;
}

inline tessera::api::ExportFormatInfo export_format(const std::string& run, const std::string& id) {
  for (const auto& f : tessera::api::export_formats_for_run(run))
    if (f.id == id) return f;
  return {};
}

// XORs the byte at `offset` of `file` with `mask`.
inline void flip_bits(const std::string& file, std::size_t offset, char mask) {
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(offset));
  char byte = 0;
  io.read(&byte, 1);
  byte = static_cast<char>(byte ^ mask);
  io.seekp(static_cast<std::streamoff>(offset));
  io.write(&byte, 1);
}

// XORs the byte `offset` bytes into tensor `name`'s data in safetensors `file` with `mask`.
inline void flip_bits_in_tensor(const std::string& file, const std::string& name, std::size_t offset, char mask) {
  std::size_t at = 0;
  {
    // The tensor's offset in the file: 8 + header length + its offset in the data section.
    tessera::io::SafetensorsFile f(file);
    const std::uint8_t* start = f.tensors().begin()->second.data;
    for (const auto& [n, t] : f.tensors()) start = std::min(start, t.data);
    std::ifstream in(file, std::ios::binary);
    std::uint64_t header = 0;
    in.read(reinterpret_cast<char*>(&header), 8);
    at = 8 + header + static_cast<std::size_t>(f.tensor(name).data - start) + offset;
  }
  flip_bits(file, at, mask);
}

}  // namespace tessera_test
