#pragma once
// Peak host and GPU memory of a quantization run, forecast from the model's shapes and the run's
// settings before any work (issue 14, item 4). Torch-free: only config arithmetic, so that the CLI
// (`tessera plan`, the pre-flight check of `tessera quantize`) and the GUI's run panel call the
// same function. Every term is derived from the code that allocates it (memory_forecast.cpp names
// the place); the only measured numbers are constants of the process (libtorch's baseline and
// warm-up, the tokenizer's working memory per corpus byte, and for CUDA builds the runtime's host
// memory and cuBLAS workspaces), validated against real runs in tests/bench/RESULTS.md ("Memory forecast").
//
// How the peak is computed: the run is replayed as a sequence of phases (load, tokenize, embed,
// then per block: targets, the method's steps, evaluation, next inputs), each with the tensors
// alive at its worst moment. On the GPU the peak is the largest phase (libtorch's caching
// allocator reuses any freed block by splitting it). On the host, libtorch's CPU allocator keeps
// every freed block of 1 MiB or more for a later request of nearly the same size
// (runtime/cpu_block_cache.cpp), so a block size once needed n times stays resident n times: the
// host peak is, over the phases in order, the largest of (blocks retained so far per size + the
// smaller allocations alive in the phase + the process baseline).
#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "pipeline/run_config.h"

namespace tessera::pipeline {

// One line of the breakdown: `bytes` in total; `detail` says what it is and where it comes from.
struct MemoryTerm {
  std::string name;
  std::string detail;
  double bytes = 0;
};

struct MemoryForecast {
  double host_bytes = 0;                        // peak resident memory of the process
  double gpu_bytes = 0;                         // peak memory on the CUDA device, 0 on the CPU
  std::vector<MemoryTerm> host_terms;           // sum to host_bytes, largest first
  std::vector<MemoryTerm> gpu_terms;            // sum to gpu_bytes, largest first
  std::string host_peak_phase, gpu_peak_phase;  // where each peak happens, e.g. "block 0: awq scale search"
  // Where the calibration activations live: "cpu", "gpu" or "pinned host memory" (the rule of
  // quantization_run.cpp: on the GPU when 3 chains take less than half its free memory).
  std::string placement = "cpu";
  double activation_bytes = 0;     // one [samples, seq_len, hidden] fp32 chain
  std::vector<std::string> notes;  // assumptions the numbers rest on
};

// What the forecast cannot read from the two configs.
struct ForecastOptions {
  // Resident memory of the process with libtorch loaded and its thread pools and BLAS buffers
  // started, before the run's own allocations (measured on this machine's Debian libtorch 1.13,
  // CPU build; RESULTS.md, "Memory forecast"). A CUDA build adds its runtime: see kCudaHostOverheadBytes.
  double host_baseline_bytes = -1;  // < 0: the measured constant for the device
  // Free memory of the CUDA device now, which decides where the activations go; < 0: unknown,
  // assumed to hold them (the forecast notes it).
  double gpu_free_bytes = -1;
  double corpus_bytes = 0;        // size of the calibration text file (read and tokenized whole)
  int cpu_threads = 1;            // libtorch's intra-op threads (evaluation runs one batch per thread)
  bool evaluate = false;          // quantize --eval: perplexity of the result afterwards
  double eval_text_bytes = 0;     // size of the --eval text file
  std::int64_t eval_seq_len = 0;  // 0: min(2048, model context), perplexity.cpp's default
  // Attention without a [batch, heads, T, T] score matrix (scaled_dot_product_attention's flash /
  // memory-efficient kernels): -1 = as this build does it (libtorch >= 2 on CUDA; never with the
  // CPU's libtorch 1.13, model/torch_compat.h), 0 = no, 1 = yes.
  int fused_attention = -1;
};

// Measured: peak RSS of `tessera quantize` runs whose tensors are negligible (RESULTS.md, "Memory forecast").
extern const double kCpuProcessBaselineBytes;
// A CUDA build in host memory (from one recorded H100 run): its larger libraries from the start,
// and the CUDA context and kernels from the first CUDA call.
extern const double kCudaHostLibrariesBytes;
extern const double kCudaHostOverheadBytes;
// The CUDA context and kernels on the device, outside libtorch's allocator (an estimate).
extern const double kCudaDeviceOverheadBytes;
// cuBLAS workspaces held in libtorch's CUDA caching allocator (from one recorded H100 run).
extern const double kCublasWorkspaceBytes;

MemoryForecast forecast_memory(const RunConfig& config, const model::LlamaConfig& model,
                               const ForecastOptions& options = {});

// What the machine has: MemAvailable of /proc/meminfo (< 0 where unreadable) and, on CUDA, the
// device's free memory (< 0: unknown or CPU).
struct MemoryBudget {
  double host_available_bytes = -1;
  double gpu_free_bytes = -1;
};
double host_available_bytes();  // /proc/meminfo MemAvailable in bytes, -1 where unavailable

// "" when the forecast fits the budget; otherwise the refusal: what exceeds what, the largest
// terms, and settings that would fit (fewer samples, a shorter seq_len, a smaller batch, the
// GPU), each checked with forecast_memory itself.
std::string memory_refusal(const MemoryForecast& forecast, const RunConfig& config, const model::LlamaConfig& model,
                           const ForecastOptions& options, const MemoryBudget& budget);

// A human-readable table of the forecast (what `tessera plan` prints).
std::string format_memory_forecast(const MemoryForecast& forecast);
std::string format_bytes(double bytes);  // "1.23 GiB", "456.0 MiB"

}  // namespace tessera::pipeline
