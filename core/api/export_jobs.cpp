#include "api/export_jobs.h"

#include "export/fake_quant_export.h"
#include "runtime/torch_runtime.h"
#include "util/error.h"

namespace tessera::api {

std::vector<ExportFormatInfo> export_formats_for_run(const std::string& run_dir) {
  (void)run_dir;  // a fake-quant folder holds any run
  return {{"hf", "Fake-quant Hugging Face folder (safetensors)", true, ""}};
}

ExportResult export_run(const ExportRequest& request, const std::function<void(const ExportProgress&)>& progress,
                        const StopToken& stop) {
  if (request.format != "hf")
    throw Error("export format \"" + request.format + "\" is not available yet (available: hf)");
  stop.throw_if_stopped();
  if (progress) progress({"writing", 0, 1});
  const auto r = exporting::export_fake_quant_hf(request.run_dir, request.out, runtime::parse_dtype(request.dtype),
                                                 request.replace_existing);
  if (progress) progress({"done", 1, 1});
  ExportResult result{r.path, r.format, r.dtype, r.bytes, r.tensors_checked, "", {}};
  result.self_check = std::to_string(r.tensors_checked) + " quantized weights re-read and bit-identical to the run's codes";
  return result;
}

}  // namespace tessera::api
