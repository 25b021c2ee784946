#include "api/device_memory.h"

#include "runtime/torch_runtime.h"

namespace tessera::api {

double device_memory_in_use_bytes(const std::string& device) {
  if (device.rfind("cuda", 0) != 0) return 0.0;
  try {
    return runtime::gpu_memory_in_use_bytes(runtime::parse_device(device));
  } catch (const std::exception&) {
    return 0.0;  // the run itself reports a bad device; a plot only shows nothing
  }
}

}  // namespace tessera::api
