#pragma once
// Process-wide libtorch settings and parsing of --device / --dtype values.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace tessera::runtime {

// Sets libtorch's intra-op threads to the machine's cores minus `reserved_cores`, at least one
// (Debian's libtorch starts with one). TESSERA_THREADS overrides the count. Also keeps freed CPU
// memory for reuse (glibc's heap settings, runtime/cpu_block_cache.h).
void configure_threads(int reserved_cores = 0);
// Inside its scope libtorch's intra-op threads and the BLAS's threads are `threads`; the previous
// counts come back at its end. For work parallel at a coarser grain (evaluation windows on their
// own threads), where splitting each small operation again only adds waiting.
class ScopedIntraOpThreads {
 public:
  explicit ScopedIntraOpThreads(int threads);
  ~ScopedIntraOpThreads();
  ScopedIntraOpThreads(const ScopedIntraOpThreads&) = delete;
  ScopedIntraOpThreads& operator=(const ScopedIntraOpThreads&) = delete;

 private:
  int previous_;
};
torch::Device parse_device(const std::string& name);     // "cpu", "cuda", "cuda:1"; throws if unusable
torch::ScalarType parse_dtype(const std::string& name);  // fp32|float32, fp16|float16, bf16|bfloat16
std::string dtype_label(torch::ScalarType dtype);        // "fp32", "fp16", "bf16"
// Peak memory held by libtorch's CUDA allocator since the last reset; 0 on CPU builds.
double peak_gpu_memory_gib(const torch::Device& device);
// Bytes currently held by tensors on a CUDA device (no synchronisation); 0 on CPU.
double gpu_memory_in_use_bytes(const torch::Device& device);
void reset_peak_gpu_memory(const torch::Device& device);
// What a whole-device figure (nvidia-smi's "used") is made of: the allocator's reserved segments
// (their peak since the last reset, and now) and what the process holds outside the allocator
// (CUDA context, kernels, library handles: device used now minus reserved now, assuming no other
// process on the device). All 0 on CPU.
struct GpuMemoryPeaks {
  double peak_reserved_bytes = 0, reserved_bytes = 0, outside_allocator_bytes = 0;
};
GpuMemoryPeaks gpu_memory_peaks(const torch::Device& device);
void synchronize(const torch::Device& device);
// Free memory on a CUDA device in bytes (cudaMemGetInfo); -1 on CPU or when unknown.
std::int64_t free_device_memory(const torch::Device& device);  // waits for queued GPU work; no-op on CPU

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  std::int64_t free_bytes = 0, total_bytes = 0;
};
// Every CUDA device this process can see; empty in a CPU build or without a driver.
std::vector<CudaDeviceInfo> cuda_devices();

}  // namespace tessera::runtime
