#include "api/export_jobs.h"

#include <filesystem>

#include "export/fake_quant_export.h"
#include "export/gguf_export.h"
#include "export/packed_export.h"
#include "export/run_source.h"
#include "pipeline/quantization_run.h"
#include "runtime/torch_runtime.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace tessera::api {
namespace {

struct FormatEntry {
  const char* id;
  const char* label;
};

// Every format this build knows, in the order the GUI lists them.
constexpr FormatEntry kFormats[] = {
    {"hf", "Fake-quant Hugging Face folder (safetensors)"},
    {"gptq", "GPTQ folder, checkpoint_format gptq_v2 (true zero points)"},
    {"gptq-v1", "GPTQ folder, checkpoint_format gptq (v1: zero - 1 stored)"},
    {"awq", "AWQ-GEMM folder (4-bit, interleaved)"},
    {"gguf-f32", "GGUF file for llama.cpp, F32 tensors"},
    {"gguf-f16", "GGUF file for llama.cpp, F16 weights (the run's weights rounded to fp16)"},
    {"gguf-q4_0", "GGUF file for llama.cpp, Q4_0 blocks from the codes where exact, else F32"},
    {"gguf-q4_1", "GGUF file for llama.cpp, Q4_1 blocks from the codes where exact, else F32"},
    {"gguf-q5_0", "GGUF file for llama.cpp, Q5_0 blocks from the codes where exact, else F32"},
    {"gguf-q5_1", "GGUF file for llama.cpp, Q5_1 blocks from the codes where exact, else F32"},
    {"gguf-q8_0", "GGUF file for llama.cpp, Q8_0 blocks from the codes where exact, else F32"},
};

bool is_packed(const std::string& id) { return id == "gptq" || id == "gptq-v1" || id == "awq"; }

std::string known_ids() {
  std::string s;
  for (const auto& f : kFormats) s += (s.empty() ? "" : ", ") + std::string(f.id);
  return s;
}

}  // namespace

std::vector<ExportFormatInfo> export_formats_for_run(const std::string& run_dir) {
  std::vector<ExportFormatInfo> out;
  std::string load_error;
  exporting::RunSource run;
  try {
    run = exporting::RunSource::load(run_dir, /*codes=*/false);
  } catch (const Error& e) {
    load_error = e.what();
  }
  for (const auto& f : kFormats) {
    ExportFormatInfo info{f.id, f.label, true, ""};
    if (!load_error.empty()) {
      info.available = false;
      info.reason = load_error;
    } else if (is_packed(f.id)) {
      info.reason = exporting::packed_export_refusal(run, f.id);  // a fake-quant folder holds any run
      info.available = info.reason.empty();
    } else if (exporting::is_gguf_format(f.id)) {
      info.reason = exporting::gguf_export_refusal(run, f.id);
      info.available = info.reason.empty();
    }
    out.push_back(info);
  }
  return out;
}

// An export never writes over the run it reads: `out` equal to the run directory, or a folder
// that holds it, would be replaced (with --force) and the run lost.
static void refuse_export_over_run(const ExportRequest& request) {
  std::error_code ec;
  const auto run = fs::weakly_canonical(request.run_dir, ec);
  const auto out = fs::weakly_canonical(request.out, ec);
  if (ec) return;  // the export itself reports paths it cannot use
  const auto rel = run.lexically_relative(out);
  if (!rel.empty() && *rel.begin() != "..")
    throw Error("the export destination " + request.out +
                (rel == "." ? " is the run directory " : " holds the run directory ") + request.run_dir +
                "; writing it would replace the run. Choose another output path");
}

ExportResult export_run(const ExportRequest& request, const std::function<void(const ExportProgress&)>& progress,
                        const StopToken& stop) {
  stop.throw_if_stopped();
  refuse_export_over_run(request);
  if (progress) progress({"writing", 0, 1});
  exporting::ExportReport r;
  if (request.format == "hf") {
    r = exporting::export_fake_quant_hf(request.run_dir, request.out, runtime::parse_dtype(request.dtype),
                                        request.replace_existing);
  } else if (is_packed(request.format)) {
    r = exporting::export_packed(request.run_dir, request.out, request.format, runtime::parse_dtype(request.dtype),
                                 request.replace_existing, stop);
  } else if (exporting::is_gguf_format(request.format)) {
    r = exporting::export_gguf(request.run_dir, request.out, request.format, request.replace_existing, stop);
  } else {
    throw Error("unknown export format \"" + request.format + "\" (known: " + known_ids() + ")");
  }
  if (progress) progress({"done", 1, 1});
  ExportResult result{r.path, r.format, r.dtype, r.bytes, r.tensors_checked, r.self_check, r.not_converted, {}};
  const int act_bits = pipeline::read_run_manifest(request.run_dir, /*require_finished=*/true).config.act_bits;
  if (act_bits > 0) {
    result.warnings.push_back("the run quantizes activations to " + std::to_string(act_bits) +
                              " bits per token, which " + request.format +
                              " cannot record: the export holds the quantized weights only, and engines keep "
                              "activations in 16 bits, so it scores like the run without activation quantization");
    logger()->warn("{}", result.warnings.back());
  }
  return result;
}

}  // namespace tessera::api
