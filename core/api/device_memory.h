#pragma once
// The devices a worker can run on, and the memory the core has allocated on one, for front ends
// that list them and plot memory while a job runs (torch-free header like api/model_jobs.h).
#include <string>
#include <vector>

#include "api/job_types.h"

namespace tessera::api {

// Bytes currently allocated by libtorch's caching allocator on `device` ("cuda", "cuda:1"); 0 for
// "cpu", in a build without CUDA, or for a device string that does not parse. Cheap and
// thread-safe: a run samples it at its events (api::quantize).
double device_memory_in_use_bytes(const std::string& device);

// The CPU (cores, machine memory) and every CUDA device with its name and free/total memory.
std::vector<DeviceInfo> list_devices();

// Resident memory of this process in bytes (Linux /proc/self/statm; 0 where unavailable).
double resident_memory_bytes();

}  // namespace tessera::api
