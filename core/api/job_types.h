#pragma once
// The plain data of every job the CLI, the worker and the GUI run: requests, progress reports and
// results. No libtorch and no function of the core here, so that the worker protocol (protocol/)
// and the GUI, which links no torch, share these types with the core's job functions (api/*.h).
#include <cstdint>
#include <string>
#include <vector>

#include "eval/layer_stats_record.h"
#include "export/export_report.h"
#include "model/llama_config.h"

namespace tessera::api {

struct ModelSummary {
  std::string path;
  std::string format;  // "Hugging Face safetensors" or "llama2.c"
  model::LlamaConfig config;
  std::int64_t parameters = 0;
  std::string tokenizer_path;  // the tokenizer found beside the model, "" if none
};

struct EvalRequest {
  std::string run_dir;  // a finished quantization run: scores its fake-quantized model instead
  std::string model_path;
  std::string tokenizer_path;  // "" = the one found beside the model
  std::string text_path;
  std::int64_t seq_len = 0;  // 0 = min(2048, model context)
  std::int64_t batch_size = 1;
  std::string device = "cpu";
  std::string dtype = "fp32";
};

struct EvalReport {
  double perplexity = 0;
  double mean_loss = 0;
  std::int64_t text_tokens = 0;
  std::int64_t windows = 0;
  std::int64_t seq_len = 0;
  double seconds = 0;
  double tokens_per_second = 0;
  double load_seconds = 0;
  std::string device, dtype, model_path, tokenizer_path, text_path;
  std::string newlines;  // how the text's line endings were read (text/text_file.h)
};

struct EvalProgress {
  std::string stage;  // "loading", "tokenizing", "evaluating"
  std::int64_t windows_done = 0, windows_total = 0;
  double running_perplexity = 0;
};

struct QuantizeReport {
  std::string run_dir;
  std::int64_t blocks = 0, restored_blocks = 0;
  double seconds = 0;
  std::string calibration_sha256, placement;
  std::vector<eval::LayerStats> layers;
  std::vector<double> loss_rtn, loss;             // per block output loss: plain RTN vs the method
  double peak_gpu_bytes = 0, peak_rss_bytes = 0;  // of the sampled memory (Memory events)
  // CUDA runs: the allocator's peak of reserved segments, and what the process holds on the device
  // outside the allocator at the end (context, kernels, library handles); their sum is the run's
  // peak device memory as nvidia-smi counts it (what the memory forecast's GPU figure estimates).
  double peak_gpu_reserved_bytes = 0, gpu_outside_allocator_bytes = 0;
};

// One export format and whether it can hold a given run exactly (for the GUI's format list).
struct ExportFormatInfo {
  std::string id;     // the --format value: hf, gptq, gptq-v1, awq, gguf-f32, gguf-f16, gguf-q4_0 ... gguf-q6_k
  std::string label;  // "Fake-quant Hugging Face folder (safetensors)"
  bool available = false;
  std::string reason;  // why not, when !available ("AWQ-GEMM holds 4-bit only")
};

struct ExportRequest {
  std::string run_dir, out;
  std::string format = "hf";   // an ExportFormatInfo::id; gguf-* write one file at `out`, the others a folder
  std::string dtype = "fp16";  // float tensors (hf), scales and float layers (gptq/awq); unused by gguf-*
  bool replace_existing = false;
};

struct ExportProgress {
  std::string stage;  // "writing" (the write and its self-check), then "done"
  std::int64_t done = 0, total = 0;
};

struct ExportResult {
  std::string path, format, dtype;
  std::int64_t bytes = 0, tensors_checked = 0;
  std::string self_check;                  // a one-line report of the self-check that passed
  std::vector<std::string> not_converted;  // "layer: why" for layers the format could not hold, written as floats
  // Tensors written in llama.cpp's per-tensor fallback type of a GGUF k-quant (export_report.h).
  std::vector<exporting::FallbackTensor> fallbacks;
  // What the exported model does not carry from the run (activation quantization: the formats hold
  // weights only, so the export scores like the run's weights with 16-bit activations).
  std::vector<std::string> warnings;
};

// One quantized Linear of a finished (or partly finished) run, in numbers a front end can plot:
// how its integer codes differ from plain round-to-nearest of the checkpoint's weight, how its
// per-group scales differ from RTN's, and TesseraQ's DST factors.
struct LayerDetail {
  std::int64_t block = 0;
  std::string layer;   // "q_proj", ...
  std::string method;  // the run's method
  int bits = 0;
  std::int64_t rows = 0, cols = 0, group_size = 0, groups = 0;  // group_size: effective (per channel = cols)
  // Histogram of code - RTN code over all weights: code_change_counts[i] counts the delta
  // code_change_min + i. Plain RTN of the checkpoint's weight is the reference, so for methods
  // that transform the weight first (AWQ scaling, also under TesseraQ's AWQ init) the deltas
  // include that transform, not only rounding decisions.
  std::int64_t code_change_min = 0;
  std::vector<std::int64_t> code_change_counts;
  double changed_fraction = 0;  // share of weights whose code differs from RTN's
  // Per (row, group), row-major: the run's scale / RTN's scale of the same group.
  std::vector<double> scale_ratio;
  // TesseraQ's dequantization-scale factors per (row, group); empty for other methods.
  std::vector<double> dst_factors;
  std::vector<std::int64_t> code_counts;  // histogram of the run's codes, 2^bits bins
};

// A device a worker can run on, as it reports it.
struct DeviceInfo {
  std::string id;                          // the RunConfig::device value: "cpu", "cuda:0", ...
  std::string name;                        // "NVIDIA H100 80GB HBM3", or the CPU's model name
  double total_bytes = 0, free_bytes = 0;  // GPU memory, or the machine's memory for the CPU
  int cores = 0;                           // CPU cores (0 for GPUs)
};

}  // namespace tessera::api
