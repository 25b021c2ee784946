#include "api/export_jobs.h"

#include "export/fake_quant_export.h"
#include "runtime/torch_runtime.h"
#include "util/error.h"

namespace tessera::api {

ExportResult export_run(const ExportRequest& request) {
  if (request.format != "hf")
    throw Error("export format \"" + request.format + "\" is not available yet (available: hf)");
  const auto r = exporting::export_fake_quant_hf(request.run_dir, request.out, runtime::parse_dtype(request.dtype),
                                                 request.replace_existing);
  return {r.path, r.format, r.dtype, r.bytes, r.tensors_checked};
}

}  // namespace tessera::api
