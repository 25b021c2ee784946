#include "export/export_formats.h"

#include "export/fake_quant_export.h"
#include "export/gguf_export.h"
#include "export/packed_export.h"
#include "formats/gguf_blocks.h"

namespace tessera::exporting {
namespace {

ExportFormat packed(const std::string& id, const std::string& label) {
  return {id, label, [id](const RunSource& run) { return packed_export_refusal(run, id); },
          [id](const ExportJob& j, const StopToken& stop) {
            return export_packed(j.run_dir, j.out, id, j.dtype, j.replace_existing, stop);
          }};
}

ExportFormat gguf(const std::string& id, const std::string& label) {
  return {id, label, [id](const RunSource& run) { return gguf_export_refusal(run, id); },
          [id](const ExportJob& j, const StopToken& stop) {
            return export_gguf(j.run_dir, j.out, id, j.replace_existing, stop);
          }};
}

std::vector<ExportFormat> make_formats() {
  std::vector<ExportFormat> f = {
      {"hf", "Fake-quant Hugging Face folder (safetensors)", [](const RunSource&) { return std::string(); },
       [](const ExportJob& j, const StopToken&) {
         return export_fake_quant_hf(j.run_dir, j.out, j.dtype, j.replace_existing);
       }},
      packed("gptq", "GPTQ folder, checkpoint_format gptq_v2 (true zero points)"),
      packed("gptq-v1", "GPTQ folder, checkpoint_format gptq (v1: zero - 1 stored)"),
      packed("awq", "AWQ-GEMM folder (4-bit, interleaved)"),
      gguf("gguf-f32", "GGUF file for llama.cpp, F32 tensors"),
      gguf("gguf-f16", "GGUF file for llama.cpp, F16 weights (the run's weights rounded to fp16)"),
  };
  // One format per GGUF block type (formats/gguf_blocks.h).
  for (const auto& b : formats::gguf_block_types())
    if (!b.format_id.empty())  // IQ4_NL: only a fallback
      f.push_back(gguf(b.format_id, "GGUF file for llama.cpp, " + formats::ggml_type_name(b.type) +
                                        (b.k_quant() ? " super-blocks" : " blocks") +
                                        " from the codes where exact, else F32"));
  return f;
}

}  // namespace

const std::vector<ExportFormat>& export_formats() {
  static const std::vector<ExportFormat> formats = make_formats();
  return formats;
}

const ExportFormat* find_export_format(const std::string& id) {
  for (const auto& f : export_formats())
    if (f.id == id) return &f;
  return nullptr;
}

std::string export_format_ids() {
  std::string s;
  for (const auto& f : export_formats()) s += (s.empty() ? "" : ", ") + f.id;
  return s;
}

}  // namespace tessera::exporting
