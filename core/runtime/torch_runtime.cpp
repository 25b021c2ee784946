#include "runtime/torch_runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "runtime/cpu_block_cache.h"
#include "util/error.h"

#ifdef TESSERA_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace tessera::runtime {

namespace {

// Debian's libtorch calls the system BLAS (OpenBLAS with libopenblas0-pthread), whose own thread
// pool torch::set_num_threads does not size. Left at its default, every core, it competed with the
// GUI thread for the core the workbench keeps free: the event loop stalled for 104 ms in a test
// run, 23-27 ms with the pool sized like torch's. Looked up at run time because other builds
// (the CUDA machine's libtorch) use another BLAS.
void size_blas_threads(int threads) {
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(threads);
}

// glibc returns freed blocks above its mmap threshold to the kernel, so each forward pass of the
// CPU path got its large temporaries as fresh pages and paid a page fault per 4 KiB: stories260K
// evaluation ran at about 3,200 tokens/s with one thread and 1,560 with two on the 2-core
// machine (tests/bench/RESULTS.md). Keeping such blocks in the heap (largest mmap threshold glibc
// accepts, no trimming below 1 GiB) makes the steady state reuse the same memory.
void keep_freed_memory_in_the_heap() {
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
}

}  // namespace

void configure_threads(int reserved_cores) {
  static bool done = false;
  if (done) return;
  done = true;
  // TESSERA_THREADS overrides the core count (e.g. to leave cores to other work).
  int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - reserved_cores);
  if (const char* env = std::getenv("TESSERA_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || n < 1 || n > 4096)
      throw Error(std::string("TESSERA_THREADS must be a whole number of threads from 1 to 4096, not \"") + env + "\"");
    threads = static_cast<int>(n);
  }
  torch::set_num_threads(threads);
  size_blas_threads(threads);
  keep_freed_memory_in_the_heap();
  // Freed blocks above glibc's mmap threshold are kept too, up to a quarter of the memory.
  const auto physical =
      static_cast<std::size_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  install_cpu_block_cache(physical / 4);
}

ScopedIntraOpThreads::ScopedIntraOpThreads(int threads) : previous_(torch::get_num_threads()) {
  torch::set_num_threads(threads);
  size_blas_threads(threads);
}

ScopedIntraOpThreads::~ScopedIntraOpThreads() {
  torch::set_num_threads(previous_);
  size_blas_threads(previous_);
}

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw Error("device \"" + name + "\" requested but CUDA is not available in this build or machine");
    try {
      return torch::Device(name);
    } catch (const c10::Error&) {
      throw Error("invalid device \"" + name + "\" (use cpu, cuda or cuda:N)");
    }
  }
  throw Error("unknown device \"" + name + "\" (use cpu, cuda or cuda:N)");
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "fp16" || name == "float16") return torch::kFloat16;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  throw Error("unknown dtype \"" + name + "\" (use fp32, fp16 or bf16)");
}

std::string dtype_label(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return "fp32";
    case torch::kFloat16:
      return "fp16";
    case torch::kBFloat16:
      return "bf16";
    default:
      return c10::toString(dtype);
  }
}

double peak_gpu_memory_gib(const torch::Device& device) {
#ifdef TESSERA_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    const auto& bytes = stats.allocated_bytes[static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    return static_cast<double>(bytes.peak) / (1024.0 * 1024.0 * 1024.0);
  }
#endif
  (void)device;
  return 0.0;
}

double gpu_memory_in_use_bytes(const torch::Device& device) {
#ifdef TESSERA_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    const auto& bytes = stats.allocated_bytes[static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    return static_cast<double>(bytes.current);
  }
#endif
  (void)device;
  return 0.0;
}

GpuMemoryPeaks gpu_memory_peaks(const torch::Device& device) {
  GpuMemoryPeaks p;
#ifdef TESSERA_WITH_CUDA
  if (device.is_cuda()) {
    const int index = device.index() < 0 ? 0 : device.index();
    c10::cuda::device_synchronize();
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    const auto& reserved = stats.reserved_bytes[static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    p.peak_reserved_bytes = static_cast<double>(reserved.peak);
    p.reserved_bytes = static_cast<double>(reserved.current);
    std::size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) == cudaSuccess)
      p.outside_allocator_bytes = static_cast<double>(total - free_bytes) - p.reserved_bytes;
  }
#endif
  (void)device;
  return p;
}

void reset_peak_gpu_memory(const torch::Device& device) {
#ifdef TESSERA_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#endif
  (void)device;
}

void synchronize(const torch::Device& device) {
#ifdef TESSERA_WITH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#endif
  (void)device;
}

std::int64_t free_device_memory(const torch::Device& device) {
#ifdef TESSERA_WITH_CUDA
  if (device.is_cuda()) {
    c10::cuda::set_device(device.index() < 0 ? 0 : device.index());
    std::size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) == cudaSuccess) return static_cast<std::int64_t>(free_bytes);
  }
#endif
  (void)device;
  return -1;
}

std::vector<CudaDeviceInfo> cuda_devices() {
  std::vector<CudaDeviceInfo> devices;
#ifdef TESSERA_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return devices;
  for (int i = 0; i < count; ++i) {
    CudaDeviceInfo d;
    d.index = i;
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) == cudaSuccess) d.name = prop.name;
    c10::cuda::set_device(i);
    std::size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) == cudaSuccess) {
      d.free_bytes = static_cast<std::int64_t>(free_bytes);
      d.total_bytes = static_cast<std::int64_t>(total);
    }
    devices.push_back(d);
  }
#endif
  return devices;
}

}  // namespace tessera::runtime
