#pragma once
// Memory the core has allocated on a device, for front ends that plot it while a job runs
// (torch-free header like api/model_jobs.h).
#include <string>

namespace tessera::api {

// Bytes currently allocated by libtorch's caching allocator on `device` ("cuda", "cuda:1"); 0 for
// "cpu", in a build without CUDA, or for a device string that does not parse. Cheap and
// thread-safe: the workbench samples it from the run's worker thread.
double device_memory_in_use_bytes(const std::string& device);

}  // namespace tessera::api
