#include "pipeline/memory_forecast.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "methods/method_registry.h"
#include "methods/omniquant_settings.h"
#include "methods/tesseraq_settings.h"
#include "quant/grid_target.h"

namespace tessera::pipeline {

// Resident memory of `tessera quantize` before the run's own allocations (libtorch's libraries
// loaded and initialized, logging, a small model and tokenizer), Debian libtorch 1.13 on the 2-core
// CPU machine, read from the run's Memory events at its first log line; and what the first block
// operations add (OpenMP's thread pool, OpenBLAS's buffers, glibc's arena of the second thread),
// the peak RSS of a run of 1 window x 16 tokens minus the former. tests/bench/RESULTS.md ("Memory forecast").
const double kCpuProcessBaselineBytes = 168.0 * 1024 * 1024;
const double kCpuComputeWarmupBytes = 20.0 * 1024 * 1024;
// The CUDA build (PyTorch 2.x wheel) on an H100, from the recorded run tests/data/gpu-run-stories260K
// (its Memory events, a `tessera worker`): RSS 474 MiB after tokenizing train-sample.txt, before any
// CUDA call, where this build has 168 + 92 (free heap the tokenizer left): 212 MiB more libraries.
// A CUDA build loads them on the CPU too: a CPU run there measured 749 MiB against 610 forecast
// without them (test_memory_forecast on the H100 machine, 2026-12-07).
const double kCudaHostLibrariesBytes = 212.0 * 1024 * 1024;
#ifdef TESSERA_WITH_CUDA
constexpr bool kCudaBuild = true;  // libtorch with CUDA (core/CMakeLists.txt)
#else
constexpr bool kCudaBuild = false;
#endif
// CUDA's context, the kernels loaded and their host-side state, which grow with the kernels a method
// uses (CUDA loads modules lazily): the peak RSS of `tessera quantize` on an H100 (PyTorch 2.11, CUDA
// 13) of stories260K, 128 x 256 windows, minus this forecast's other terms (488 MiB), per method.
// tests/bench/RESULTS.md ("Memory forecast on the GPU") checks them against the other runs.
double cuda_host_runtime_bytes(methods::MemoryProfile profile) {
  switch (profile) {
    case methods::MemoryProfile::WeightsOnly:
      return 467.0 * 1024 * 1024;
    case methods::MemoryProfile::Awq:
      return 556.0 * 1024 * 1024;
    case methods::MemoryProfile::Omniquant:
      return 624.0 * 1024 * 1024;
    case methods::MemoryProfile::Tesseraq:
      return 1035.0 * 1024 * 1024;
  }
  return 1035.0 * 1024 * 1024;
}
// The CUDA context and the kernels loaded, on the device, outside libtorch's allocator: device
// memory in use minus the allocator's reserved bytes at the end of `tessera quantize` on an H100
// (PyTorch 2.11 wheel, CUDA 13; tests/bench/forecast_gpu_table.sh, tests/bench/RESULTS.md "Memory
// forecast on the GPU"): 686.8 MiB for RTN and AWQ runs; runs that train (autograd's backward
// kernels, OmniQuant) 750.8 MiB; TesseraQ (its own kernels as well) 768.8 MiB.
const double kCudaDeviceOverheadBytes = 686.8 * 1024 * 1024;
const double kCudaTrainingKernelsBytes = 64.0 * 1024 * 1024;
const double kTesseraqKernelsBytes = 18.0 * 1024 * 1024;
// libtorch's CUDA caching allocator rounds large requests up to 2 MiB and keeps every segment it
// got from cudaMalloc for the rest of the run.
const double kCudaSegmentRounding = 2.0 * 1024 * 1024;
// cuBLAS/cuBLASLt workspaces, which libtorch 2.x takes from its caching allocator: the recorded
// H100 run held 64.8 MiB more than its tensors between blocks (72.8 MiB allocated with 8 MiB of
// activations alive).
const double kCublasWorkspaceBytes = 64.0 * 1024 * 1024;

namespace {

// Groups per row of a Linear with `in` input columns on its own grid (quant::linear_grid: a GGUF
// k-quant target's fallback type has other groups; an unquantized F16 Linear has none, counted as 1).
double linear_groups(const RunConfig& run, double in) {
  const auto g = quant::linear_grid(run.weight, static_cast<std::int64_t>(in));
  return g.quantized ? static_cast<double>(g.spec.groups(static_cast<std::int64_t>(in))) : 1.0;
}

constexpr double kMiB = 1024.0 * 1024.0;
// runtime/cpu_block_cache.cpp: CPU blocks of at least kLarge bytes are kept after being freed and
// handed out again for requests of nearly their size; smaller ones go back to glibc's heap.
constexpr double kCachedBlock = kMiB;
// Working memory of tokenizing the corpus, per byte of it: the text read through a stringstream
// and universal_newlines (3 copies), one int32 id per character, and the merge queue of
// Llama2cTokenizer::merge_pairs (prev/next int64, version uint32 and a priority queue of 32-byte
// candidates, up to one per adjacent pair, in a vector that grows by doubling): 59 to 91 bytes per
// character from the code; measured 62 with train-sample.txt (2 MiB) for the llama2.c and the
// Hugging Face tokenizer alike (RESULTS.md, "Memory forecast"). Freed at once: the big vectors are mapped
// and unmapped, the rest is reused by the run.
constexpr double kTokenizerBytesPerCorpusByte = 62.0;

// What tokenizing leaves behind as free heap (the text copies, the ids and the merge bookkeeping
// below the mmap threshold), per byte of corpus: RSS after tokenizing train-sample.txt minus that
// after sample.txt, 92 MiB for 2 MiB (RESULTS.md, "Memory forecast"). Later heap allocations reuse it.
constexpr double kTokenizerFreeHeapPerCorpusByte = 44.0;

// Where a tensor lives. HostRaw: host memory outside libtorch's allocator that never shares the
// heap (mapped files, thread pools, the tokenizer's transient peak); HostHeap: std::vector and the
// like, never kept by the block cache. glibc serves any request, even one above its mmap threshold,
// from free heap chunks before it maps new memory.
enum class Mem { Host, Gpu, Pinned, HostRaw, HostHeap };

struct Alloc {
  std::string name;   // the breakdown line it adds to
  std::string shape;  // for the detail, e.g. "[128, 256, 64] fp32"
  double bytes = 0;   // one tensor
  double count = 1;
  Mem mem = Mem::Host;
  bool free_heap = false;  // heap left free by earlier work: later heap allocations reuse it
};
using Allocs = std::vector<Alloc>;

struct Phase {
  std::string name;
  Allocs live;
};

Allocs join(std::initializer_list<const Allocs*> parts) {
  Allocs out;
  for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

std::string dims(std::initializer_list<double> d, const char* dtype) {
  std::string s = "[";
  bool first = true;
  for (double v : d) {
    s += (first ? "" : ", ") + std::to_string(static_cast<long long>(v));
    first = false;
  }
  return s + "] " + dtype;
}

const char* dtype_name(double bytes) {
  return bytes == 2 ? "bf16" : bytes == 1 ? "int8" : bytes == 8 ? "int64" : "fp32";
}

// Names of the breakdown lines.
const char* const kWeights = "model weights (fp32, host)";
const char* const kLoad = "checkpoint being read (mapped file, loader copies)";
const char* const kCorpus = "calibration corpus and tokenizer";
const char* const kTokens = "calibration token ids";
const char* const kChains = "calibration activations (fp and quantized chains, targets)";
const char* const kStaging = "activation staging copies (pinned / pageable)";
const char* const kForward = "block forward working set";
const char* const kScores = "attention scores (not fused)";
const char* const kBlockCopies = "block weight copies (device, dequantized, RTN reference)";
const char* const kCodes = "quantized codes (the method's block and the RTN reference)";
const char* const kQuantTemps = "quantizer and layer-statistics temporaries";
const char* const kAwqFeatures = "AWQ captured Linear inputs";
const char* const kAwqSearch = "AWQ search buffers (reference outputs, batch parts)";
const char* const kSaved = "training activations saved for backward";
const char* const kGrads = "backward gradients";
const char* const kOqState = "OmniQuant LWC/LET parameters, AdamW state";
const char* const kOqWeights = "OmniQuant fake-quantized weights saved for backward";
const char* const kTqCodes = "TesseraQ codes and grid";
const char* const kTqSoft = "TesseraQ soft list (int32 index + fp32 nu)";
const char* const kTqAdam = "TesseraQ Adam moments";
const char* const kTqWeights = "TesseraQ soft weights and their grads";
const char* const kTqTemps = "TesseraQ step/hardening temporaries";
const char* const kBatch = "training batches";
const char* const kEval = "evaluation (--eval perplexity)";

struct Shapes {
  double n = 0, L = 0, D = 0, I = 0, H = 0, KV = 0, hd = 0, Hq = 0, Hk = 0, V = 0, layers = 0;
  double act = 0;  // one [n, L, D] fp32 chain
  struct Linear {
    const char* name;
    double out, in;
  };
  std::vector<Linear> linears;  // one block's, in kAllLinears order
  double block_linear_params = 0, block_params = 0;
  double largest_linear = 0;
};

Shapes shapes_of(const RunConfig& c, const model::LlamaConfig& m) {
  Shapes s;
  s.n = static_cast<double>(c.samples);
  s.L = static_cast<double>(c.seq_len);
  s.D = static_cast<double>(m.hidden_size);
  s.I = static_cast<double>(m.intermediate_size);
  s.H = static_cast<double>(m.num_heads);
  s.KV = static_cast<double>(m.num_kv_heads);
  s.hd = static_cast<double>(m.head_dim);
  s.Hq = s.H * s.hd;
  s.Hk = s.KV * s.hd;
  s.V = static_cast<double>(m.vocab_size);
  s.layers = static_cast<double>(m.num_layers);
  s.act = s.n * s.L * s.D * 4.0;
  s.linears = {{"q_proj", s.Hq, s.D},   {"k_proj", s.Hk, s.D}, {"v_proj", s.Hk, s.D},  {"o_proj", s.D, s.Hq},
               {"gate_proj", s.I, s.D}, {"up_proj", s.I, s.D}, {"down_proj", s.D, s.I}};
  for (const auto& l : s.linears) {
    s.block_linear_params += l.out * l.in;
    s.largest_linear = std::max(s.largest_linear, l.out * l.in);
  }
  s.block_params = s.block_linear_params + 2 * s.D + (m.attention_bias ? s.Hq + 2 * s.Hk : 0.0);
  return s;
}

// One decoder block's weights as separate tensors (each Linear its own allocation).
Allocs block_weights(const Shapes& s, const char* name, double bytes_per, Mem mem, double count = 1) {
  Allocs a;
  for (const auto& l : s.linears)
    a.push_back({name, std::string(l.name) + " " + dims({l.out, l.in}, dtype_name(bytes_per)), l.out * l.in * bytes_per,
                 count, mem});
  a.push_back({name, "norms", 2 * s.D * bytes_per, count, mem});
  return a;
}

struct Ctx {
  const RunConfig* run = nullptr;
  const model::LlamaConfig* model = nullptr;
  Shapes s;
  bool cuda = false;
  Mem dev = Mem::Host;    // where the blocks compute
  Mem store = Mem::Host;  // where the calibration activations live
  bool fused = false;     // attention without a score matrix
  int act_bits = 0;
  double b = 1;  // forward batch (run_block, eval, AWQ): min(batch_size, samples)
};

// After the method: the integer codes of its block and of the RTN reference made beside it (uint8
// [out, in] per Linear, fp16 for an unquantized fallback Linear; both alive while the reference
// is made and while layer_stats compares their codes), and one fp32 temporary of each Linear size
// (quantize_to_codes' W/s + z, layer_stats' W - deq), which the block cache keeps per size.
// Measured on the CPU with a 7B-shaped block (RTN, 4 x 512): 8 x 16 MiB and 6 x 43 MiB of codes,
// one 64 MiB and one 172 MiB temporary. Linears under 1 MiB are left out: on the host they come
// from the heap like every small tensor, on the GPU from the allocator's small pool, which the
// replay would round up to a 2 MiB segment each.
Allocs codes_and_temporaries(const Ctx& c) {
  Allocs a;
  std::set<double> temp_sizes;
  for (const auto& l : c.s.linears) {
    const double elems = l.out * l.in;
    if (elems * 4 < kCachedBlock) continue;
    const bool quantized = quant::linear_grid(c.run->weight, static_cast<std::int64_t>(l.in)).quantized;
    a.push_back({kCodes, std::string(l.name) + " " + dims({l.out, l.in}, quantized ? "uint8" : "fp16"),
                 elems * (quantized ? 1 : 2), 2, c.dev});
    if (temp_sizes.insert(elems).second)
      a.push_back({kQuantTemps, "one per size " + dims({l.out, l.in}, "fp32"), elems * 4, 1, c.dev});
  }
  return a;
}

// --- one block's forward pass (model/llama_model.cpp decoder_block_forward), without gradients ---
// The worst moments on `rows` windows of `len` tokens: inside attention (normed input h, q and k
// after RoPE, k/v repeated to every head by repeat_interleave, matmul's contiguous operand copies,
// and with libtorch 1.13 (torch_compat.h causal_attention) the score matrix and the softmax of it,
// both [rows, heads, T, T], alive until the function returns); the SwiGLU expression (all four
// [rows, T, ffn] temporaries live to the end of the full expression in mlp_forward); and the
// residual adds (hidden, normed hidden, MLP output, result). `copy_in`: the batch is copied onto
// the device first (x.narrow(...).to(device) from a host store).
std::vector<Allocs> forward_moments(const Ctx& c, double rows, double len, bool copy_in, const std::string& tag = "") {
  const auto& s = c.s;
  const std::string fw = kForward + tag;
  const double d = rows * len * s.D * 4, q = rows * len * s.Hq * 4, f = rows * len * s.I * 4;
  const std::string sd = dims({rows, len, s.D}, "fp32"), sq = dims({rows, len, s.Hq}, "fp32"),
                    sf = dims({rows, len, s.I}, "fp32");
  const double quant = c.act_bits > 0 ? 1 : 0;  // fake-quantized Linear inputs: one more copy each
  Allocs input;
  if (copy_in) input.push_back({fw, "input batch " + sd, d, 1, c.dev});
  Allocs attention = input, mlp = input, out = input;
  attention.push_back({fw, "normed input " + sd, d, 1 + quant, c.dev});
  if (c.fused) {
    // scaled_dot_product_attention: q, k, v (+ contiguous copies) and its output, no T x T matrix.
    attention.push_back({fw, "q, k, v, copies, output " + sq, q, 6, c.dev});
    attention.push_back({fw, "logsumexp", rows * s.H * len * 4, 1, c.dev});
  } else {
    attention.push_back({fw, "q, k, v, matmul copies " + sq, q, 5, c.dev});
    attention.push_back({kScores + tag, "scores + softmax " + dims({rows, s.H, len, len}, "fp32"),
                         rows * s.H * len * len * 4, 2, c.dev});
    attention.push_back({fw, "causal mask " + dims({len, len}, "bool"), len * len, 1, c.dev});
  }
  mlp.push_back({fw, "hidden, normed hidden " + sd, d, 2 + quant, c.dev});
  mlp.push_back({fw, "gate, silu, up, product " + sf, f, 4 + quant, c.dev});
  out.push_back({fw, "hidden, normed, MLP output, sum " + sd, d, 4, c.dev});
  return {attention, mlp, out};
}

// The moments of forward passes over `total` windows in batches of `rows`: a last, smaller batch
// (total not a multiple of rows) needs blocks of its own size, which the CPU block cache keeps too
// unless they are within 25% of the full batch's.
std::vector<Allocs> batched_moments(const Ctx& c, double rows, double total, double len, bool copy_in) {
  auto m = forward_moments(c, rows, len, copy_in);
  const double last = std::fmod(total, rows);
  if (last > 0 && total > rows) {
    const auto tail = forward_moments(c, last, len, copy_in);
    m.insert(m.end(), tail.begin(), tail.end());
  }
  return m;
}

// --- a forward pass with gradients and its backward (OmniQuant's and TesseraQ's steps) ---
// Saved for backward (autograd keeps the inputs of every op that needs them): h, the fp32 copy of
// hidden in rms_norm, the normed hidden and the loss's difference ([rows, T, hidden] each); q, k,
// v, the attention output ([rows, T, heads*head_dim]); gate, silu, up and their product ([rows, T,
// ffn]); the softmax output (not fused). The backward of attention holds the softmax output and
// two [rows, heads, T, T] gradients besides the q/k/v gradients.
std::vector<Allocs> training_moments(const Ctx& c, double rows, double e, const std::string& tag) {
  const auto& s = c.s;
  const double T = s.L;
  const double d = rows * T * s.D, q = rows * T * s.Hq, f = rows * T * s.I;
  const char* dt = dtype_name(e);
  Allocs saved = {
      {kSaved, "h, normed hidden " + dims({rows, T, s.D}, dt), d * e, 2, c.dev},
      {kSaved, "hidden in fp32 (rms_norm), loss diff " + dims({rows, T, s.D}, "fp32"), d * 4, 2, c.dev},
      {kSaved, "q, k, v, attention output " + dims({rows, T, s.Hq}, dt), q * e, 4.0 + (c.fused ? 1 : 0), c.dev},
      {kSaved, "gate, silu, up, product " + dims({rows, T, s.I}, dt), f * e, 4, c.dev}};
  if (!c.fused)
    saved.push_back({kScores + tag, "softmax saved " + dims({rows, s.H, T, T}, dt), rows * s.H * T * T * e, 1, c.dev});
  Allocs fwd_attention = saved, backward = saved;
  if (!c.fused)
    fwd_attention.push_back({kScores + tag, "scores " + dims({rows, s.H, T, T}, dt), rows * s.H * T * T * e, 1, c.dev});
  fwd_attention.push_back({kForward + tag, "matmul copies " + dims({rows, T, s.Hq}, dt), q * e, 2, c.dev});
  if (!c.fused)
    backward.push_back(
        {kScores + tag, "score gradients " + dims({rows, s.H, T, T}, dt), rows * s.H * T * T * e, 2, c.dev});
  backward.push_back({kGrads, "dq, dk, dv, d(attention) " + dims({rows, T, s.Hq}, dt), q * e, 4, c.dev});
  backward.push_back({kGrads, "d(hidden), d(normed) " + dims({rows, T, s.D}, dt), d * e, 2, c.dev});
  Allocs mlp_backward = saved;
  mlp_backward.push_back({kGrads, "d(gate), d(up), d(product) " + dims({rows, T, s.I}, dt), f * e, 3, c.dev});
  return {fwd_attention, backward, mlp_backward};
}

class Replay {
 public:
  explicit Replay(std::vector<Phase>& phases) : phases_(phases) {}
  void add(const std::string& name, const Allocs& live) { phases_.push_back({name, live}); }
  void add_each(const std::string& name, const Allocs& base, const std::vector<Allocs>& moments) {
    for (const auto& m : moments) add(name, join({&base, &m}));
  }

 private:
  std::vector<Phase>& phases_;
};

// --- AWQ (methods/awq_method.cpp) ---
// awq_apply_scales on the full-precision chain of all n samples: the batched forward keeps each
// batch's output and every recorded Linear input (q/k/v input, o_proj input, gate/up input,
// down_proj input), then torch::cat makes the four features [n, T, *] while the parts are alive;
// each search computes a reference output (batched: parts + cat), |feat| for the mean, and the
// scaled feature (feat / s) beside the old one. `base` is everything alive around the call.
// Returns the features, alive after the call while the caller keeps the AwqScaled.
Allocs awq_scales_phases(const Ctx& c, Replay& r, const Allocs& base, const std::string& block) {
  const auto& s = c.s;
  const double n = s.n, T = s.L, b = c.b;
  const double parts = std::ceil(n / b);
  Allocs around = base;
  // x = inputs_fp.to(device): a copy of the whole chain when it lives on the host and the blocks
  // on the GPU.
  if (c.store != c.dev)
    around.push_back({kStaging, "inputs_fp on the device " + dims({n, T, s.D}, "fp32"), s.act, 1, c.dev});
  const Allocs recorded = {
      {kAwqFeatures, "recorded batch parts q/gate inputs " + dims({b, T, s.D}, "fp32"), b * T * s.D * 4, 2 * parts,
       c.dev},
      {kAwqFeatures, "recorded batch parts o_proj input " + dims({b, T, s.Hq}, "fp32"), b * T * s.Hq * 4, parts, c.dev},
      {kAwqFeatures, "recorded batch parts down_proj input " + dims({b, T, s.I}, "fp32"), b * T * s.I * 4, parts,
       c.dev}};
  const Allocs outputs = {
      {kAwqSearch, "block outputs per batch " + dims({b, T, s.D}, "fp32"), b * T * s.D * 4, parts, c.dev}};
  const Allocs out_cat = {{kAwqSearch, "torch::cat of the outputs " + dims({n, T, s.D}, "fp32"), s.act, 1, c.dev}};
  const Allocs features = {
      {kAwqFeatures, "q/k/v and gate/up inputs " + dims({n, T, s.D}, "fp32"), n * T * s.D * 4, 2, c.dev},
      {kAwqFeatures, "o_proj input " + dims({n, T, s.Hq}, "fp32"), n * T * s.Hq * 4, 1, c.dev},
      {kAwqFeatures, "down_proj input " + dims({n, T, s.I}, "fp32"), n * T * s.I * 4, 1, c.dev}};
  const std::string p = block + "awq ";
  {
    const auto with = join({&around, &recorded, &outputs});
    r.add_each(p + "record inputs", with, batched_moments(c, b, n, T, c.store != c.dev));
    r.add(p + "record inputs", join({&with, &out_cat}));
    r.add(p + "features", join({&around, &recorded, &features}));
  }
  const Allocs ref_parts = {
      {kAwqSearch, "reference output parts " + dims({b, T, s.D}, "fp32"), b * T * s.D * 4, parts, c.dev}};
  const Allocs ref = {{kAwqSearch, "reference output " + dims({n, T, s.D}, "fp32"), s.act, 1, c.dev}};
  const Allocs abs_d = {{kAwqSearch, "|feature| / feature / s " + dims({n, T, s.D}, "fp32"), s.act, 1, c.dev}};
  const Allocs abs_f = {
      {kAwqSearch, "|feature| / feature / s " + dims({n, T, s.I}, "fp32"), n * T * s.I * 4, 1, c.dev}};
  const auto feats = join({&around, &features});
  // S1 qkv / S3 gate_up: reference and trial outputs of the attention / MLP sub-layer.
  for (const char* sub : {"qkv", "gate_up"}) {
    r.add(p + sub + " search", join({&feats, &abs_d}));
    r.add(p + sub + " search", join({&feats, &ref_parts, &ref}));
    const auto m = batched_moments(c, b, n, T, false);
    for (std::size_t i = std::string(sub) == "qkv" ? 0 : 1; i < m.size(); i += 3)
      r.add(p + sub + " search", join({&feats, &ref, &m[i]}));
    r.add(p + sub + " search", join({&feats, &abs_d}));
  }
  // S4 down: |feat_down| and feat_down / s are [n, T, ffn]; the reference is [n, T, hidden].
  r.add(p + "down search", join({&feats, &abs_f}));
  r.add(p + "down search", join({&feats, &ref_parts, &ref}));
  return features;
}

// awq_clip_weights (search_clip_ratios): per Linear, rows in chunks of 256 (or 64): the grouped
// features of about awq_clip_tokens tokens, and the reference, trial and error [chunk, tokens,
// groups] of each candidate ratio.
Allocs awq_clip_allocs(const Ctx& c) {
  const auto& s = c.s;
  const double tokens_all = s.n * s.L;
  const double step = std::max(
      1.0, std::floor(tokens_all /
                      std::max<double>(1.0, static_cast<double>(c.run->settings.integer("awq", "clip_tokens")))));
  const double tokens = std::ceil(tokens_all / step);
  double worst = 0;
  for (const auto& l : s.linears) {
    const double chunk = std::fmod(l.out, 256.0) == 0 ? 256 : 64;
    const double groups = linear_groups(*c.run, l.in);
    worst = std::max(worst, std::min(chunk, l.out) * tokens * groups * 4);
  }
  return {{kAwqSearch, "clip search: einsum outputs [chunk, tokens, groups] fp32", worst, 3, c.dev},
          {kAwqSearch, "clip search: grouped features (einsum copy)", tokens * std::max(s.D, s.I) * 4, 1, c.dev}};
}

// TesseraQ's awq init records the quantized chain's Linear inputs of the first 128 samples
// (tesseraq_method.cpp) for the clip search: batch parts, then torch::cat of them.
void tesseraq_clip_features(const Ctx& c, Replay& r, const Allocs& base, const std::string& block) {
  const auto& s = c.s;
  const double used = std::min(s.n, 128.0), T = s.L, b = c.b;
  const double parts = std::ceil(used / b);
  const Allocs recorded = {
      {kAwqFeatures, "recorded parts q/gate inputs " + dims({b, T, s.D}, "fp32"), b * T * s.D * 4, 2 * parts, c.dev},
      {kAwqFeatures, "recorded parts o_proj input " + dims({b, T, s.Hq}, "fp32"), b * T * s.Hq * 4, parts, c.dev},
      {kAwqFeatures, "recorded parts down_proj input " + dims({b, T, s.I}, "fp32"), b * T * s.I * 4, parts, c.dev}};
  const Allocs features = {
      {kAwqFeatures, "clip features q, gate " + dims({used, T, s.D}, "fp32"), used * T * s.D * 4, 2, c.dev},
      {kAwqFeatures, "clip features o_proj " + dims({used, T, s.Hq}, "fp32"), used * T * s.Hq * 4, 1, c.dev},
      {kAwqFeatures, "clip features down_proj " + dims({used, T, s.I}, "fp32"), used * T * s.I * 4, 1, c.dev}};
  r.add_each(block + "tesseraq awq-clip inputs", join({&base, &recorded}),
             batched_moments(c, b, used, T, c.store != c.dev));
  r.add(block + "tesseraq awq-clip inputs", join({&base, &recorded, &features}));
  const auto clip = awq_clip_allocs(c);
  r.add(block + "tesseraq awq-clip search", join({&base, &features, &clip}));
}

// --- OmniQuant (methods/omniquant_method.cpp) ---
// LWC logits gamma/beta [out, groups] per Linear with their AdamW moments and gradients; LET
// scales (4 vectors). Each step: the block's fake-quantized weights built with autograd
// (lwc_fake_quantize keeps rounded + z, q - z and the result per Linear for backward; LET adds the
// transformed weight), a forward with gradients on oq_batch samples, the augmented loss's extra
// forward without gradients.
void omniquant_phases(const Ctx& c, Replay& r, const Allocs& base, const std::string& block) {
  const auto& s = c.s;
  const auto& run = *c.run;
  double groups_elems = 0;
  for (const auto& l : s.linears) groups_elems += l.out * linear_groups(run, l.in);
  const bool let = methods::omniquant_let(run) && s.KV == s.H;
  const double rows = std::min(static_cast<double>(run.settings.integer("omniquant", "batch")), s.n);
  Allocs state = {
      {kOqState, "gamma, beta [out, groups] x (param, grad, 2 AdamW moments)", groups_elems * 4, 2 * 4, c.dev}};
  if (let) {
    // LET's activation maxima: a forward over all samples with an observer (no gradients).
    r.add_each(block + "omniquant LET init", base, batched_moments(c, c.b, s.n, s.L, c.store != c.dev));
    state.push_back({kOqState, "LET scales x (param, grad, 2 AdamW moments)", (3 * s.D + s.Hq / 2) * 4, 4, c.dev});
  }
  const auto weights = block_weights(s, kOqWeights, 4, c.dev, 3 + (let ? 1 : 0));
  Allocs batch;
  if (c.store != c.dev)
    batch.push_back({kBatch, "x, y " + dims({rows, s.L, s.D}, "fp32"), rows * s.L * s.D * 4, 2, c.dev});
  const auto with = join({&base, &state, &weights, &batch});
  r.add_each(block + "omniquant step", with, training_moments(c, rows, 4, ""));
  if (methods::omniquant_aug_loss(run)) {
    Allocs saved = training_moments(c, rows, 4, "")[0];
    r.add_each(block + "omniquant aug-loss forward", join({&with, &saved}), forward_moments(c, rows, s.L, false));
  }
}

// --- TesseraQ (methods/tesseraq_method.cpp, tesseraq_linear.{h,cpp}) ---
void tesseraq_phases(const Ctx& c, Replay& r, const Allocs& base, const std::string& block) {
  const auto& s = c.s;
  const auto& run = *c.run;
  // The init's memory is that of the method it runs (methods::MethodInfo::can_init_tesseraq).
  const auto* init = methods::find_method(run.settings.text("tesseraq", "init"));
  const auto init_memory = init ? init->memory : methods::MemoryProfile::WeightsOnly;
  if (init_memory == methods::MemoryProfile::Awq) {
    // The scaled features of awq_apply_scales are dropped at once (`.weights` of a temporary).
    awq_scales_phases(c, r, base, block + "tesseraq init: ");
    if (run.settings.flag("awq", "clip")) tesseraq_clip_features(c, r, base, block);
  } else if (init_memory == methods::MemoryProfile::Omniquant) {
    omniquant_phases(c, r, base, block + "tesseraq init: ");
  }
  // Trainer state per Linear (TesseraqLinear): codes int8 (int16 at 7-8 bits: qmax + 1 > 127);
  // scale, zero, v [out, groups] fp32 (the CUDA kernels add step and group_grad); the soft list
  // (index int32 + nu fp32) holds every element after init and the soft fraction t0 of the
  // schedule's first PAR iteration after its hardening, when the first adam_step allocates the Adam
  // moments (ensure_adam_moments: 2 fp32 per soft element, 2 per group for v); the soft weights
  // (compute dtype, requires_grad) and their grads.
  // Codes of more than 6 bits are int16; a Q6_K target's Q8_0 fallback Linears have 8.
  double code_bytes = run.weight.bits >= 7 ? 2 : 1;
  for (const auto& l : s.linears)
    if (quant::linear_grid(run.weight, static_cast<std::int64_t>(l.in)).spec.bits >= 7) code_bytes = 2;
  const auto thresholds = methods::par_thresholds(run);
  const double t0 = thresholds.empty() ? 1.0 : thresholds.front();
  const bool kernels = c.cuda;  // CUDA kernels (TESSERA_CUDA_KERNELS) where the layers live on the GPU
  const double e = run.trains_in_bf16(c.cuda) ? 2 : 4;
  const std::string soft_label = "soft fraction " + std::to_string(t0).substr(0, 5);
  Allocs codes, soft_all, soft, adam, weights;
  for (const auto& l : s.linears) {
    // Linears on F16 or IQ4_NL (a GGUF target's fallbacks) are constants of the block, not trained.
    if (!quant::linear_grid(run.weight, static_cast<std::int64_t>(l.in)).learnable()) continue;
    const double elems = l.out * l.in;
    const double groups = l.out * linear_groups(run, l.in);
    const std::string shape = std::string(l.name) + " " + dims({l.out, l.in}, "");
    codes.push_back({kTqCodes, "codes " + shape + (code_bytes == 1 ? "int8" : "int16"), elems * code_bytes, 1, c.dev});
    // The kernels' scratch: step and group grad, and for k-quant offsets the step's zero points.
    const bool step_zero = kernels && run.weight.superblock_offsets();
    codes.push_back({kTqCodes,
                     "scale, zero, v" + std::string(kernels ? ", step, group grad" : "") +
                         (step_zero ? ", step zero" : "") + " [out, groups] fp32",
                     groups * 4, kernels ? (step_zero ? 6.0 : 5.0) : 3.0, c.dev});
    soft_all.push_back({kTqSoft, "index int32 + nu fp32 of every element (init)", elems * 4, 2, c.dev});
    soft.push_back({kTqSoft, "index int32 + nu fp32, " + soft_label, std::floor(t0 * elems) * 4, 2, c.dev});
    adam.push_back({kTqAdam, "m, v fp32 per soft element, " + soft_label, std::floor(t0 * elems) * 4, 2, c.dev});
    adam.push_back({kTqAdam, "m, v of the DST variables [out, groups]", groups * 4, 2, c.dev});
    weights.push_back({kTqWeights, "weight + grad " + shape + dtype_name(e), elems * e, 2, c.dev});
  }
  const double largest = s.largest_linear;
  const double soft_largest = std::floor(t0 * largest);
  // TesseraqLinear::init of one Linear: W / s, floor, frac fp32 and rsig^-1 in float64.
  const Allocs init_temps = {{kTqTemps, "init of the largest Linear: W/s, floor, frac fp32", largest * 4, 3, c.dev},
                             {kTqTemps, "init of the largest Linear: rsig^-1 in fp64", largest * 8, 2, c.dev}};
  r.add(block + "tesseraq init state", join({&base, &codes, &soft_all, &init_temps}));
  // TesseraqLinear::harden, one Linear at a time, Adam released: the score fp32, the masks, the
  // hardened positions int64 and the new soft list beside the old one.
  const Allocs harden = {{kTqTemps, "harden: score fp32", largest * 4, 1, c.dev},
                         {kTqTemps, "harden: newly / keep masks", largest, 2, c.dev},
                         {kTqTemps, "harden: hardened positions int64", (largest - soft_largest) * 8, 1, c.dev},
                         {kTqTemps, "harden: new soft list", soft_largest * 4, 2, c.dev}};
  r.add(block + "tesseraq PAR harden", join({&base, &codes, &soft_all, &harden}));
  // A step: the batches (inputs and targets, fp32; two sets with the CUDA side stream), the
  // forward/backward, and the Adam step of one Linear, which with libtorch ops (no CUDA kernels)
  // makes the dense weight [out, in] fp32 in write_weight and gradients() (codes as fp32, the
  // expanded zero and step, their products) and gathers over the soft list (positions and group
  // indices int64, the gathered codes, gradients, rsig and its derivative, fp32).
  const double rows = std::min(static_cast<double>(run.settings.integer("tesseraq", "batch")), s.n);
  const Allocs batches = {{kBatch, "inputs + targets " + dims({rows, s.L, s.D}, "fp32"), rows * s.L * s.D * 4,
                           (c.cuda && c.store != c.dev) ? 4.0 : 2.0, c.dev},
                          {kBatch, "compute-dtype input, fp32 output " + dims({rows, s.L, s.D}, dtype_name(e)),
                           rows * s.L * s.D * 4, e == 4 ? 1.0 : 2.0, c.dev}};
  Allocs step_temps;
  if (!kernels) {
    step_temps.push_back({kTqTemps, "Adam step of the largest Linear: dense [out, in] fp32", largest * 4, 3, c.dev});
    step_temps.push_back({kTqTemps, "Adam step: soft-list positions, group indices int64", soft_largest * 8, 2, c.dev});
    step_temps.push_back({kTqTemps, "Adam step: soft-list gathers fp32", soft_largest * 4, 6, c.dev});
  }
  const auto with = join({&base, &codes, &soft, &adam, &weights, &batches, &step_temps});
  r.add_each(block + "tesseraq PAR step", with, training_moments(c, rows, e, ""));
}

// --- evaluation after the run (api quantize --eval -> eval/perplexity.cpp) ---
// The fake-quantized model loaded again (fp32), and per thread one batch of windows through the
// whole model: embeddings, a block's forward working set, the logits [rows, T, vocab] fp32, their
// shifted copy and log_softmax.
std::vector<Allocs> eval_phases(const Ctx& c, const ForecastOptions& o, double threads) {
  const auto& s = c.s;
  const double T = o.eval_seq_len > 0 ? static_cast<double>(o.eval_seq_len)
                                      : std::min(2048.0, static_cast<double>(c.model->max_position_embeddings));
  const double rows = static_cast<double>(std::max<std::int64_t>(1, c.run->batch_size));
  const Mem dev = c.dev;
  // The attention moment dominates a block; the logits follow the last block. The windows' count
  // is unknown before tokenizing: a last, partial batch of 3/4 of the windows (the largest that
  // the block cache cannot serve from the full batch's blocks) runs beside the others.
  auto add = [&](Allocs& a, double r, double times) {
    auto m = forward_moments(c, r, T, false, "");
    for (auto& x : m[0]) {
      x.name = kEval;
      x.count *= times;
      a.push_back(x);
    }
    a.push_back(
        {kEval, "logits, shifted logits, log_softmax " + dims({r, T, s.V}, "fp32"), r * T * s.V * 4, 3 * times, dev});
    a.push_back(
        {kEval, "embeddings, block input/output " + dims({r, T, s.D}, "fp32"), r * T * s.D * 4, 2 * times, dev});
  };
  std::vector<Allocs> phases(1);
  add(phases[0], rows, threads);  // every thread on a full batch
  const double partial = std::floor(0.75 * rows);
  if (rows > 1 && partial >= 1 && partial * 1.25 < rows) {
    phases.emplace_back();
    add(phases[1], rows, threads - 1);  // then one of them on the last batch
    add(phases[1], partial, 1);
  }
  return phases;
}

// One number with a fixed-precision format; the buffer holds any double these formats print.
std::string format_number(const char* format, double value) {
  char buf[400];
  const int n = std::snprintf(buf, sizeof buf, format, value);
  return n < 0 ? std::string("?") : std::string(buf);
}

std::string fmt_count(double count) { return format_number(count == std::floor(count) ? "%.0f" : "%.1f", count); }

// The peak of a replay: the GPU's (largest phase) or the host's (block cache retention).
struct Peak {
  double bytes = 0;
  std::string phase;
  std::vector<MemoryTerm> terms;
};

void add_term(std::map<std::string, MemoryTerm>& terms, const Alloc& a, double count, const std::string& suffix = "") {
  auto& t = terms[a.name];
  t.name = a.name;
  t.bytes += a.bytes * count;
  const std::string piece = fmt_count(count) + " x " + format_bytes(a.bytes) + " " + a.shape + suffix;
  if (t.detail.find(piece) == std::string::npos) t.detail += (t.detail.empty() ? "" : "; ") + piece;
}

std::vector<MemoryTerm> sorted_terms(std::map<std::string, MemoryTerm>& terms) {
  std::vector<MemoryTerm> out;
  for (auto& [k, t] : terms)
    if (t.bytes > 0) out.push_back(t);
  std::stable_sort(out.begin(), out.end(), [](const MemoryTerm& a, const MemoryTerm& b) { return a.bytes > b.bytes; });
  return out;
}

// The GPU: libtorch's caching allocator replayed over the phases. Going from one phase to the next,
// the tensors that end go to its cache and those that begin take the smallest cached block that
// holds them (the rest of that block stays cached: large blocks are split), else a new segment.
// Segments are never returned, so the reserved bytes only grow; blocks freed in a segment are not
// merged here, so this is an upper bound of what the allocator reserves. (It matters for AWQ: the
// per-batch parts of each captured feature are cached when their concatenation is made, and the
// next feature's parts, of another size, need new segments.)
Peak gpu_peak(const std::vector<Phase>& phases, double overhead) {
  auto gpu_live = [](const Phase& p) {
    std::map<std::pair<std::string, double>, double> live;  // (name, bytes) -> count
    for (const auto& a : p.live)
      if (a.mem == Mem::Gpu && a.bytes > 0 && a.count > 0) live[{a.name, a.bytes}] += a.count;
    return live;
  };
  auto rounded = [](double bytes) { return std::ceil(bytes / kCudaSegmentRounding) * kCudaSegmentRounding; };
  std::multiset<double> cached;
  std::map<std::pair<std::string, double>, double> previous;
  std::map<std::string, MemoryTerm> terms;  // what made the segments
  double reserved = 0;
  std::string phase_of_growth;
  for (const auto& p : phases) {
    const auto live = gpu_live(p);
    for (const auto& [key, count] : previous) {  // ended: to the cache
      const auto now = live.find(key);
      const auto ended = static_cast<long>(std::ceil(count - (now == live.end() ? 0 : now->second)));
      for (long i = 0; i < ended; ++i) cached.insert(rounded(key.second));
    }
    std::vector<std::pair<double, std::pair<std::string, double>>> begun;  // (bytes, key) per tensor
    for (const auto& [key, count] : live) {
      const auto before = previous.find(key);
      const auto started = static_cast<long>(std::ceil(count - (before == previous.end() ? 0 : before->second)));
      for (long i = 0; i < started; ++i) begun.push_back({rounded(key.second), key});
    }
    std::sort(begun.begin(), begun.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [bytes, key] : begun) {
      const auto fit = cached.lower_bound(bytes);
      if (fit != cached.end()) {
        const double rest = *fit - bytes;
        cached.erase(fit);
        if (rest > 0) cached.insert(rest);
        continue;
      }
      reserved += bytes;
      phase_of_growth = p.name;
      for (const auto& a : p.live)
        if (a.mem == Mem::Gpu && a.name == key.first && a.bytes == key.second) {
          add_term(terms, a, 1);
          break;
        }
    }
    previous = live;
  }
  if (reserved == 0) return {};
  Peak best;
  best.bytes = reserved + kCublasWorkspaceBytes + overhead;
  best.phase = phase_of_growth;
  best.terms = sorted_terms(terms);
  best.terms.push_back({"cuBLAS workspaces (caching allocator)", "measured on an H100 run", kCublasWorkspaceBytes});
  best.terms.push_back(
      {"CUDA context and kernels (outside the allocator)", "measured on an H100, PyTorch 2.11", overhead});
  return best;
}

// Host: blocks of >= 1 MiB (and every pinned block, the CUDA host allocator caches by power of
// two) stay allocated once freed, per size; the rest follows what is alive.
Peak host_peak(const std::vector<Phase>& phases, double baseline) {
  struct Class {
    double count = 0;
    Allocs owners;  // the tensors of the phase that needed the most blocks of this size
  };
  std::map<std::pair<int, double>, Class> retained;
  Peak best;
  std::map<std::pair<int, double>, Class> best_retained, best_here;
  Allocs best_small, small_high_allocs;
  double small_high = 0;
  bool found = false;
  for (const auto& p : phases) {
    std::map<std::pair<int, double>, Class> here;
    Allocs small;
    for (const auto& a : p.live) {
      if (a.mem == Mem::Gpu || a.bytes <= 0 || a.count <= 0) continue;
      if (a.mem == Mem::Pinned) {
        const double rounded = std::pow(2.0, std::ceil(std::log2(a.bytes)));
        auto& k = here[{1, rounded}];
        k.count += a.count;
        k.owners.push_back(a);
      } else if (a.mem == Mem::Host && a.bytes >= kCachedBlock) {
        auto& k = here[{0, a.bytes}];
        k.count += a.count;
        k.owners.push_back(a);
      } else {
        small.push_back(a);
      }
    }
    for (auto& [key, k] : here)
      if (k.count > retained[key].count) retained[key] = k;
    // Smaller tensors come from glibc's heap, which is never trimmed (runtime/torch_runtime.cpp)
    // and whose freed holes sit between retained blocks: their high-water mark stays resident.
    double small_torch = 0;
    Allocs raw;
    for (const auto& a : small)
      if (a.mem == Mem::Host)
        small_torch += a.bytes * a.count;
      else
        raw.push_back(a);
    if (small_torch > small_high) {
      small_high = small_torch;
      small_high_allocs.clear();
      for (const auto& a : small)
        if (a.mem == Mem::Host) small_high_allocs.push_back(a);
    }
    // Heap allocations first fill the heap left free by earlier work (pinned blocks are mappings).
    double heap = small_high, mapped = 0, free_heap = 0;
    for (const auto& [key, k] : retained) (key.first == 0 ? heap : mapped) += key.second * k.count;
    for (const auto& a : raw) {
      if (a.free_heap)
        free_heap += a.bytes * a.count;
      else if (a.mem == Mem::HostHeap)
        heap += a.bytes * a.count;
      else
        mapped += a.bytes * a.count;
    }
    const double sum = baseline + std::max(heap, free_heap) + mapped;
    if (!found || sum > best.bytes) {
      found = true;
      best.bytes = sum;
      best.phase = p.name;
      best_retained = retained;
      best_here = here;
      best_small = raw;
      best_small.insert(best_small.end(), small_high_allocs.begin(), small_high_allocs.end());
    }
  }
  std::map<std::string, MemoryTerm> terms;
  for (const auto& [key, k] : best_retained) {
    // Blocks of a size the peak phase does not use all of: freed earlier, kept by the cache.
    const auto live = best_here.find(key);
    const double in_use = live == best_here.end() ? 0 : live->second.count;
    const std::string note = in_use >= k.count ? ""
                             : in_use == 0     ? " (freed, kept by the block cache)"
                                           : " (" + fmt_count(in_use) + " in use, the rest kept by the block cache)";
    for (const auto& a : k.owners) {
      Alloc sized = a;
      sized.bytes = key.second;  // pinned: rounded up
      add_term(terms, sized, a.count, std::string(key.first ? " pinned" : "") + note);
    }
  }
  // The free heap counts only where the heap allocations do not fill it.
  double heap_at_best = 0, free_at_best = 0;
  for (const auto& [key, k] : best_retained)
    if (key.first == 0) heap_at_best += key.second * k.count;
  for (const auto& a : best_small) {
    if (a.free_heap)
      free_at_best += a.bytes * a.count;
    else if (a.mem == Mem::Host || a.mem == Mem::HostHeap)
      heap_at_best += a.bytes * a.count;
  }
  for (const auto& a : best_small) {
    if (!a.free_heap) {
      add_term(terms, a, a.count);
    } else if (free_at_best > heap_at_best) {
      Alloc left = a;
      left.bytes = (free_at_best - heap_at_best) * (a.bytes * a.count / free_at_best);
      add_term(terms, left, 1, " (beyond what the run's heap allocations reuse)");
    }
  }
  best.terms = sorted_terms(terms);
  best.terms.insert(best.terms.begin(),
                    {"process baseline", "libtorch loaded, thread pools, BLAS buffers (measured)", baseline});
  return best;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

double dtype_bytes(const std::string& torch_dtype) {
  if (torch_dtype == "float16" || torch_dtype == "bfloat16") return 2;
  return 4;
}

}  // namespace

std::string format_bytes(double bytes) {
  const double a = std::fabs(bytes);
  if (a >= 1024.0 * 1024 * 1024) return format_number("%.2f GiB", bytes / (1024.0 * 1024 * 1024));
  if (a >= 1024.0 * 1024) return format_number("%.1f MiB", bytes / (1024.0 * 1024));
  if (a >= 1024.0) return format_number("%.1f KiB", bytes / 1024.0);
  return format_number("%.0f B", bytes);
}

MemoryForecast forecast_memory(const RunConfig& run, const model::LlamaConfig& m, const ForecastOptions& o) {
  MemoryForecast f;
  Ctx c;
  c.run = &run;
  c.model = &m;
  c.s = shapes_of(run, m);
  const auto& s = c.s;
  c.cuda = run.device.rfind("cuda", 0) == 0;
  c.dev = c.cuda ? Mem::Gpu : Mem::Host;
  c.act_bits = run.act_bits;
  c.b = std::max(1.0, std::min(static_cast<double>(run.batch_size), s.n));
  // torch_compat.h: libtorch >= 2 (the CUDA builds) runs scaled_dot_product_attention, whose CUDA
  // kernels keep no score matrix; the CPU machine's libtorch 1.13 computes it in full.
  c.fused = o.fused_attention >= 0 ? o.fused_attention == 1 : c.cuda;
  f.activation_bytes = s.act;
  // quantization_run.cpp: the three chains on the GPU when they take less than half of its free
  // memory, else in pinned host memory.
  if (c.cuda) {
    if (o.gpu_free_bytes < 0 || 3.0 * s.act < 0.5 * o.gpu_free_bytes) {
      c.store = Mem::Gpu;
      f.placement = "gpu";
      if (o.gpu_free_bytes < 0) f.notes.push_back("GPU free memory unknown: activations assumed to fit on the GPU");
    } else {
      c.store = Mem::Pinned;
      f.placement = "pinned host memory";
    }
  }
  if (!c.fused)
    f.notes.push_back("attention computes the full [batch, heads, T, T] score matrix (libtorch < 2 or CPU)");
  // TesseraQ without the CUDA kernels makes weight-sized temporaries of every Linear size, which
  // the block cache keeps up to its cap; the forecast counts those of the largest Linear only.
  // Within 15% for the real models here (Linears under 1 MiB), 0.72 of the measured peak for a
  // 7B-shaped block (RESULTS.md, "Memory forecast").
  if (methods::method_info(run.method).memory == methods::MemoryProfile::Tesseraq && !c.cuda &&
      s.largest_linear * 4 >= kCachedBlock)
    f.notes.push_back(
        "TesseraQ on the CPU with Linears this large: the peak may exceed this forecast (a 7B-shaped block "
        "measured 1.39x it); the CUDA path is what the forecast models at this size");

  std::vector<Phase> phases;
  Replay r(phases);
  // Model weights as loaded (model/model_loader.cpp): fp32 on the host, each block's tensors
  // separate; the embedding (and an untied lm_head) one tensor each.
  Allocs weights = block_weights(s, kWeights, 4, Mem::Host, s.layers);
  weights.push_back({kWeights, "embed_tokens " + dims({s.V, s.D}, "fp32"), s.V * s.D * 4,
                     m.tie_word_embeddings ? 1.0 : 2.0, Mem::Host});
  weights.push_back({kWeights, "final norm", s.D * 4, 1, Mem::Host});
  // Loading: llama2.c (.bin) maps the file and clones each kind's stack of all layers, then each
  // layer's slice again (llama2c_checkpoint.cpp), so the stacks are freed at the end; Hugging Face
  // folders (safetensors, mapped) convert each tensor to fp32 straight from the mapped bytes and
  // check it in small slices (formats::float32_tensor_from_view, runtime::all_finite), so they leave
  // nothing behind.
  {
    const double file_bytes = static_cast<double>(m.parameter_count()) * dtype_bytes(m.torch_dtype);
    Allocs load = {{kLoad, "checkpoint file mapped", file_bytes, 1, Mem::HostRaw}};
    if (ends_with(run.model, ".bin")) {
      for (const auto& l : s.linears)
        load.push_back({kLoad, std::string(l.name) + " stack of all layers " + dims({s.layers, l.out, l.in}, "fp32"),
                        s.layers * l.out * l.in * 4, 1, Mem::Host});
    }
    r.add("load model", join({&weights, &load}));
  }
  // Tokenizing the corpus (text/calibration.cpp reads and encodes the whole file), then the
  // calibration windows' ids (int32, kept) and their int64 copy (`ids` in run_quantization).
  const Allocs corpus = {
      {kCorpus, "corpus text, pieces, ids", o.corpus_bytes * kTokenizerBytesPerCorpusByte, 1, Mem::HostRaw}};
  r.add("tokenize calibration corpus", join({&weights, &corpus}));
  Allocs base = weights;
  const Alloc base_warmup = {"libtorch compute warm-up", "thread pools, BLAS buffers (measured)",
                             kCpuComputeWarmupBytes, 1, Mem::HostRaw};
  base.push_back(base_warmup);
  // CUDA's context and kernels in host memory arrive with the first CUDA call, after tokenizing.
  if (c.cuda)
    base.push_back({"CUDA runtime on the host", "context, kernels (measured per method on an H100)",
                    cuda_host_runtime_bytes(methods::method_info(run.method).memory), 1, Mem::HostRaw});
  base.push_back({kTokens, "windows (std::vector) " + dims({s.n, s.L}, "int32"), s.n * s.L * 4, 1, Mem::HostHeap});
  const Alloc corpus_left = {kCorpus,
                             "heap the tokenizer left free (reused by later allocations)",
                             o.corpus_bytes * kTokenizerFreeHeapPerCorpusByte,
                             1,
                             Mem::HostRaw,
                             true};
  base.push_back(corpus_left);
  base.push_back({kTokens, "ids int64 " + dims({s.n, s.L}, "int64"), s.n * s.L * 8, 1, Mem::Host});
  const std::string sd = dims({s.n, s.L, s.D}, "fp32");
  // Embedding and the quantized chain's clone (quantization_run.cpp); with pinned placement each
  // is made in pageable memory and copied into a pinned block.
  {
    Allocs chains = {{kChains, "x_fp " + sd, s.act, 1, c.store}};
    if (c.store != Mem::Host) chains.push_back({kStaging, "embedding output (pageable) " + sd, s.act, 1, Mem::Host});
    r.add("embed calibration windows", join({&base, &chains}));
  }
  const Allocs chains3 = {{kChains, "x_fp, x_q, targets " + sd, s.act, 3, c.store}};
  const Allocs chains2 = {{kChains, "x_fp, x_q " + sd, s.act, 2, c.store}};
  const Allocs chains4 = {{kChains, "x_fp, x_q, targets, next x_q " + sd, s.act, 4, c.store}};
  const bool copy_in = c.store != c.dev;
  // The blocks' weights on the device (block_on: a copy on CUDA, the same tensors on the CPU),
  // the dequantized result and the RTN reference (fp32, quantization_run.cpp), and
  // compute_layer_stats' dequantized Linears and float reference (eval/layer_stats.cpp).
  const Allocs fp_block = c.cuda ? block_weights(s, kBlockCopies, 4, Mem::Gpu) : Allocs{};
  // Methods that transform the weights (not RTN) also keep them as the block's reference.
  const auto& method = methods::method_info(run.method);
  const auto profile = method.memory;
  const Allocs eval_blocks =
      block_weights(s, kBlockCopies, 4, c.dev, (c.cuda ? 4 : 3) + (method.transforms_weights ? 1 : 0));
  const Allocs codes = codes_and_temporaries(c);
  // Every block needs the same memory; block 0 stands for all (the host's retained blocks reach
  // their counts there).
  const std::string block = "block 0: ";
  {
    const auto with = join({&base, &chains2, &fp_block});
    Allocs targets = {{kChains, "targets " + sd, s.act, 1, c.store}};
    if (c.store == Mem::Pinned)
      targets.push_back({kStaging, "empty_like (pageable) before pin_memory " + sd, s.act, 1, Mem::Host});
    r.add_each(block + "targets", join({&with, &targets}), batched_moments(c, c.b, s.n, s.L, copy_in));
  }
  {
    const auto with = join({&base, &chains3, &fp_block});
    if (profile == methods::MemoryProfile::Awq) {
      const auto features = awq_scales_phases(c, r, with, block);
      if (run.settings.flag("awq", "clip")) {
        const auto clip = awq_clip_allocs(c);
        r.add(block + "awq clip search", join({&with, &features, &clip}));
      }
    } else if (profile == methods::MemoryProfile::Omniquant) {
      omniquant_phases(c, r, with, block);
    } else if (profile == methods::MemoryProfile::Tesseraq) {
      tesseraq_phases(c, r, with, block);
    }
    // WeightsOnly (RTN): quantize_block_rtn works on the weights alone.
  }
  {
    const auto with = join({&base, &chains3, &fp_block, &eval_blocks, &codes});
    r.add_each(block + "block losses and layer stats", with, batched_moments(c, c.b, s.n, s.L, copy_in));
  }
  {
    Allocs with = join({&base, &chains4, &fp_block, &eval_blocks, &codes});
    if (c.store == Mem::Pinned)
      with.push_back({kStaging, "empty_like (pageable) before pin_memory " + sd, s.act, 1, Mem::Host});
    r.add_each(block + "next quantized-chain inputs", with, batched_moments(c, c.b, s.n, s.L, copy_in));
  }
  if (o.evaluate) {
    // run_quantization has returned; the evaluation loads the run's model again.
    const double threads = c.cuda ? 1.0 : std::max(1, o.cpu_threads);
    const auto ev = eval_phases(c, o, threads);
    const Allocs text = {
        {kEval, "evaluation text tokenized", o.eval_text_bytes * kTokenizerBytesPerCorpusByte, 1, Mem::HostRaw}};
    const Allocs left = {corpus_left, base_warmup};
    r.add("evaluate (--eval): tokenize text", join({&weights, &text, &left}));
    // At least 2 bytes of text per token (stories260K's 512-token vocabulary: 1.95 on sample.txt).
    const Allocs ids = {{kEval, "text ids int32 + windows int64", o.eval_text_bytes / 2.0 * 12, 1, Mem::HostHeap},
                        {kEval, "heap the tokenizer left free", o.eval_text_bytes * kTokenizerFreeHeapPerCorpusByte, 1,
                         Mem::HostRaw, true}};
    // On CUDA the model moves to the GPU (fp32, EvalRequest's default dtype).
    Allocs on_gpu;
    for (auto a : weights)
      if (c.cuda) {
        a.name = kEval;
        a.mem = Mem::Gpu;
        on_gpu.push_back(a);
      }
    r.add_each("evaluate (--eval): windows", join({&weights, &on_gpu, &ids, &left}), ev);
  }

  double baseline = o.host_baseline_bytes >= 0 ? o.host_baseline_bytes : kCpuProcessBaselineBytes;
  if (o.host_baseline_bytes < 0 && (c.cuda || kCudaBuild)) baseline += kCudaHostLibrariesBytes;
  const auto host = host_peak(phases, baseline);
  f.host_bytes = host.bytes;
  f.host_terms = host.terms;
  f.host_peak_phase = host.phase;
  if (c.cuda) {
    const bool trains = profile == methods::MemoryProfile::Omniquant || profile == methods::MemoryProfile::Tesseraq;
    const double outside = kCudaDeviceOverheadBytes + (trains ? kCudaTrainingKernelsBytes : 0.0) +
                           (profile == methods::MemoryProfile::Tesseraq ? kTesseraqKernelsBytes : 0.0);
    const auto gpu = gpu_peak(phases, outside);
    f.gpu_bytes = gpu.bytes;
    f.gpu_terms = gpu.terms;
    f.gpu_peak_phase = gpu.phase;
    f.notes.push_back("CUDA terms were measured on an H100 with PyTorch 2.11 (host: libraries " +
                      format_bytes(kCudaHostLibrariesBytes) + ", runtime " +
                      format_bytes(cuda_host_runtime_bytes(profile)) + "; device: cuBLAS workspaces " +
                      format_bytes(kCublasWorkspaceBytes) + ", context and kernels " + format_bytes(outside) +
                      "); other cards and versions differ");
  }
  return f;
}

double host_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024.0;
  return -1;
}

namespace {

std::string largest_terms(const std::vector<MemoryTerm>& terms, std::size_t n) {
  std::string out;
  std::size_t shown = 0;
  for (const auto& t : terms) {
    if (t.name == "process baseline") continue;
    if (shown++ == n) break;
    out += (out.empty() ? "" : ", ") + t.name + " " + format_bytes(t.bytes);
  }
  return out;
}

bool fits(const MemoryForecast& f, const MemoryBudget& b, bool cuda) {
  if (b.host_available_bytes >= 0 && f.host_bytes > b.host_available_bytes) return false;
  if (cuda && b.gpu_free_bytes >= 0 && f.gpu_bytes > b.gpu_free_bytes) return false;
  return true;
}

// The largest value of `field` below `current` (halving, then refining) for which the run fits;
// 0 when none does.
template <typename Set>
std::int64_t largest_fitting(const RunConfig& config, const model::LlamaConfig& model, const ForecastOptions& options,
                             const MemoryBudget& budget, std::int64_t current, std::int64_t minimum, Set set) {
  const bool cuda = config.device.rfind("cuda", 0) == 0;
  auto ok = [&](std::int64_t v) {
    RunConfig c = config;
    set(c, v);
    return fits(forecast_memory(c, model, options), budget, cuda);
  };
  if (current <= minimum || !ok(minimum)) return 0;
  std::int64_t lo = minimum, hi = current;  // ok(lo), !ok(hi)
  while (hi - lo > 1) {
    const auto mid = lo + (hi - lo) / 2;
    (ok(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace

std::string memory_refusal(const MemoryForecast& f, const RunConfig& config, const model::LlamaConfig& model,
                           const ForecastOptions& options, const MemoryBudget& budget) {
  const bool cuda = config.device.rfind("cuda", 0) == 0;
  if (fits(f, budget, cuda)) return "";
  std::string msg;
  if (budget.host_available_bytes >= 0 && f.host_bytes > budget.host_available_bytes)
    msg += "the run needs about " + format_bytes(f.host_bytes) + " of host memory (peak in " + f.host_peak_phase +
           "), the machine has " + format_bytes(budget.host_available_bytes) +
           " available; largest terms: " + largest_terms(f.host_terms, 3) + ". ";
  if (cuda && budget.gpu_free_bytes >= 0 && f.gpu_bytes > budget.gpu_free_bytes)
    msg += "the run needs about " + format_bytes(f.gpu_bytes) + " on " + config.device + " (peak in " +
           f.gpu_peak_phase + "), " + format_bytes(budget.gpu_free_bytes) +
           " are free; largest terms: " + largest_terms(f.gpu_terms, 3) + ". ";
  std::vector<std::string> fixes;
  if (const auto n = largest_fitting(config, model, options, budget, config.samples, 1,
                                     [](RunConfig& c, std::int64_t v) { c.samples = v; }))
    fixes.push_back("--samples " + std::to_string(n));
  if (const auto t = largest_fitting(config, model, options, budget, config.seq_len, 2,
                                     [](RunConfig& c, std::int64_t v) { c.seq_len = v; }))
    fixes.push_back("--seq-len " + std::to_string(t));
  if (config.batch_size > 1)
    if (const auto b = largest_fitting(config, model, options, budget, config.batch_size, 1,
                                       [](RunConfig& c, std::int64_t v) { c.batch_size = v; }))
      fixes.push_back("--batch " + std::to_string(b));
  if (!cuda) {
    RunConfig g = config;
    g.device = "cuda";
    ForecastOptions gpu_options = options;
    gpu_options.gpu_free_bytes = -1;  // a GPU that holds the activations
    const auto on_gpu = forecast_memory(g, model, gpu_options);
    if (budget.host_available_bytes < 0 || on_gpu.host_bytes <= budget.host_available_bytes)
      fixes.push_back("--device cuda on a machine with a GPU of " + format_bytes(on_gpu.gpu_bytes) + " (host then " +
                      format_bytes(on_gpu.host_bytes) + ")");
  }
  msg += fixes.empty() ? std::string("no smaller --samples, --seq-len or --batch fits")
                       : "settings that would fit: " + [&] {
                           std::string s;
                           for (std::size_t i = 0; i < fixes.size(); ++i) s += (i ? ", or " : "") + fixes[i];
                           return s;
                         }();
  msg += "; --force runs anyway";
  return msg;
}

std::string format_memory_forecast(const MemoryForecast& f) {
  std::ostringstream out;
  auto table = [&](const char* title, double total, const std::string& phase, const std::vector<MemoryTerm>& terms) {
    out << title << " peak  " << format_bytes(total) << "  (in " << phase << ")\n";
    for (const auto& t : terms) {
      const auto detail = t.detail.size() > 110 ? t.detail.substr(0, 107) + "..." : t.detail;
      out << "  " << std::left << std::setw(58) << t.name << " " << std::right << std::setw(12) << format_bytes(t.bytes)
          << "  " << detail << "\n";
    }
  };
  out << "memory forecast (activations: " << format_bytes(f.activation_bytes) << " per chain, kept in " << f.placement
      << ")\n";
  table("host", f.host_bytes, f.host_peak_phase, f.host_terms);
  if (f.gpu_bytes > 0) table("gpu ", f.gpu_bytes, f.gpu_peak_phase, f.gpu_terms);
  for (const auto& n : f.notes) out << "note: " << n << "\n";
  return out.str();
}

}  // namespace tessera::pipeline
