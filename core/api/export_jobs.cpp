#include "api/export_jobs.h"

#include <filesystem>

#include "export/export_formats.h"
#include "export/run_source.h"
#include "pipeline/quantization_run.h"
#include "runtime/torch_runtime.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace tessera::api {

std::vector<ExportFormatInfo> export_formats_for_run(const std::string& run_dir) {
  std::vector<ExportFormatInfo> out;
  std::string load_error;
  exporting::RunSource run;
  try {
    run = exporting::RunSource::load(run_dir, /*codes=*/false);
  } catch (const Error& e) {
    load_error = e.what();
  }
  for (const auto& f : exporting::export_formats()) {
    ExportFormatInfo info{f.id, f.label, true, ""};
    info.reason = load_error.empty() ? f.refusal(run) : load_error;
    info.available = info.reason.empty();
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
  const auto* format = exporting::find_export_format(request.format);
  if (!format)
    throw Error("unknown export format \"" + request.format + "\" (known: " + exporting::export_format_ids() + ")");
  const auto r = format->write(
      {request.run_dir, request.out, runtime::parse_dtype(request.dtype), request.replace_existing}, stop);
  if (progress) progress({"done", 1, 1});
  ExportResult result{r.path,       r.format,        r.dtype,     r.bytes, r.tensors_checked,
                      r.self_check, r.not_converted, r.fallbacks, {}};
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
