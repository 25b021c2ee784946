#include "pipeline/quantization_run.h"

#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "model/model_loader.h"
#include "model/quantized_block.h"
#include "pipeline/block_method.h"
#include "quant/grid_target.h"
#include "rundir/block_stats.h"
#include "rundir/run_directory.h"
#include "rundir/run_manifest.h"
#include "runtime/torch_runtime.h"
#include "text/calibration.h"
#include "text/text_file.h"
#include "text/tokenizer_loader.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sha256.h"
#include "util/version.h"

namespace tessera::pipeline {

using nlohmann::json;

namespace {

// The fingerprint's hash of the model: the file, or a folder's config.json and weight files in name
// order.
std::string hash_model_files(const std::string& model_path) {
  if (!std::filesystem::is_directory(model_path)) return sha256_file(model_path);
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(model_path)) {
    const auto name = e.path().filename().string();
    if (name == "config.json" || e.path().extension() == ".safetensors") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  Sha256 h;
  for (const auto& f : files) {
    const auto digest = sha256_file(f) + " " + std::filesystem::path(f).filename().string() + "\n";
    h.update(digest.data(), digest.size());
  }
  return h.hex_digest();
}

// Runs `w` over x [n, L, D] in batches on `device`; the result stays where x lives.
torch::Tensor run_block(const model::LlamaConfig& c, const model::DecoderBlockWeights& w, const torch::Tensor& x,
                        const model::RopeTables& rope, torch::Device device, std::int64_t batch, int act_bits) {
  torch::NoGradGuard no_grad;
  model::BlockForwardOptions options;
  options.activation_bits = act_bits;
  // Pinned stays pinned: the methods copy batches out of it without blocking (sample_batch.h).
  auto out = x.is_pinned() ? torch::empty_like(x).pin_memory() : torch::empty_like(x);
  for (std::int64_t i = 0; i < x.size(0); i += batch) {
    const auto n = std::min(batch, x.size(0) - i);
    out.narrow(0, i, n).copy_(model::decoder_block_forward(c, w, x.narrow(0, i, n).to(device), rope, options));
  }
  return out;
}

model::DecoderBlockWeights block_on(const model::DecoderBlockWeights& w, torch::Device device) {
  model::DecoderBlockWeights out = w;
  for (auto* t : out.all_tensors())
    if (t->defined()) *t = t->to(device, torch::kFloat32);
  return out;
}

// One run, cut where its work changes kind: the constructor prepares (model, tokenizer, calibration
// windows, the locked run directory and its manifest, the embeddings), process_block() does one
// decoder block (the method or a restored block, losses, statistics, files, events), finish()
// marks the run finished. Members hold what lives across blocks, so that tensors keep the
// lifetimes the memory forecast (memory_forecast.cpp) models.
class BlockwiseRun {
 public:
  BlockwiseRun(const RunConfig& config, const std::string& run_dir, bool resume, rundir::EventSink& events,
               const StopToken& stop)
      : config_(config), resume_(resume), events_(events), stop_(stop), dir_(run_dir) {
    config.validate();
    device_ = runtime::parse_device(config.device);
    // Refused before the model is read (minutes for a large one); checked again under the lock.
    if (!resume_ && dir_.has_manifest()) refuse_existing_run();
    model_.emplace(model::load_model(config.model));
    load_calibration();
    open_run_directory();
    place_activations();
    start_chains();
  }

  std::int64_t blocks() const { return model_->config().num_layers; }
  void process_block(std::int64_t k);
  RunSummary finish();

 private:
  void log(const std::string& m) {
    logger()->info("{}", m);
    events_.on_event(rundir::RunEvent::log(-1, m));
  }
  [[noreturn]] void refuse_existing_run() const {
    throw Error(dir_.path() + " already holds a run; pass --resume to continue it, or choose another --out");
  }
  void load_calibration();
  void open_run_directory();
  void place_activations();
  void start_chains();
  // The block's codes: read back from a resumed run's files, or made by the method.
  QuantizedBlock quantize_or_restore(std::int64_t k, const model::DecoderBlockWeights& fp_weights,
                                     const torch::Tensor& targets, bool restored);

  const RunConfig& config_;
  const bool resume_;
  rundir::EventSink& events_;
  const StopToken stop_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  rundir::RunDirectory dir_;
  torch::Device device_ = torch::kCPU;
  std::optional<model::LlamaModel> model_;
  std::string tokenizer_path_;
  text::CalibrationSet calib_;
  std::optional<rundir::RunDirectoryLock> lock_;
  rundir::RunManifest manifest_;
  torch::Device store_ = torch::kCPU;  // where calibration activations live
  std::string placement_ = "cpu";
  torch::Tensor ids_, x_fp_, x_q_;
  model::RopeTables rope_;
  std::unique_ptr<BlockMethod> method_;
  std::optional<runtime::ScopedIntraOpThreads> one_thread_;
  RunSummary summary_;
  double method_seconds_ = 0;  // blocks the method computed (not restored), for the ETA
  std::int64_t computed_ = 0;
};

void BlockwiseRun::load_calibration() {
  const auto& mc = model_->config();
  tokenizer_path_ = config_.tokenizer.empty() ? text::find_tokenizer_for_model(config_.model) : config_.tokenizer;
  if (tokenizer_path_.empty()) throw Error("no tokenizer found beside " + config_.model + "; set \"tokenizer\"");
  auto tokenizer = text::load_tokenizer(tokenizer_path_);
  text::check_tokenizer_matches_model(*tokenizer, mc.vocab_size, config_.model);
  // GGUF k-quants: a Linear whose rows are not whole super-blocks takes llama.cpp's fallback type
  // (quant::linear_grid), listed here. IQ4_NL (the fallback of Q2_K and Q3_K) has non-uniform
  // levels, which only rounding to nearest knows (after AWQ's or OmniQuant's transforms).
  std::string fallbacks;
  bool nonuniform = false;
  for (auto kind : model::kAllLinears) {
    const auto in = kind == model::LinearKind::O      ? mc.num_heads * mc.head_dim
                    : kind == model::LinearKind::Down ? mc.intermediate_size
                                                      : mc.hidden_size;
    const auto grid = quant::linear_grid(config_.weight, in);
    if (!grid.fallback()) continue;
    nonuniform = nonuniform || (grid.quantized && grid.spec.nonuniform());
    fallbacks += (fallbacks.empty() ? "" : "; ") + std::string(model::linear_name(kind)) + " -> " + grid.gguf_type +
                 " (" + grid.reason + ")";
  }
  if (!fallbacks.empty())
    log("target " + config_.target + ", llama.cpp's per-tensor fallback in every block: " + fallbacks +
        (nonuniform ? "; IQ4_NL Linears are rounded to nearest (learned rounding and clipping train uniform grids)"
                    : ""));
  if (config_.seq_len > mc.max_position_embeddings)
    throw Error("calibration seq_len " + std::to_string(config_.seq_len) + " exceeds the model's context of " +
                std::to_string(mc.max_position_embeddings));
  stop_.throw_if_stopped();
  calib_ = text::sample_calibration(*tokenizer, config_.calib, config_.samples, config_.seq_len, config_.seed);
}

// Creates and locks the run directory, refuses to resume a run made from other inputs, and writes
// the manifest of an unfinished run.
void BlockwiseRun::open_run_directory() {
  auto& fp = manifest_.fingerprint;
  fp.model_sha256 = hash_model_files(config_.model);
  fp.config = config_.identity_json();
  fp.calibration_sha256 = calib_.token_sha256;
  fp.code_version = kVersion;

  dir_.create();
  lock_.emplace(dir_);
  if (dir_.has_manifest()) {
    if (!resume_) refuse_existing_run();
    const auto diff = rundir::read_manifest(dir_).fingerprint.differences(fp);
    if (!diff.empty()) throw Error("cannot resume " + dir_.path() + ": it was made with different inputs:\n" + diff);
  } else if (resume_) {
    log("nothing to resume in " + dir_.path() + "; starting a new run");
  }
  manifest_.config = json::parse(config_.to_json_text());
  manifest_.calibration = {calib_.source,  calib_.samples,       calib_.seq_len,         calib_.seed,
                           calib_.offsets, calib_.corpus_tokens, text::kNewlineHandling, json::object()};
  manifest_.tokenizer = tokenizer_path_;
  manifest_.torch_version = TORCH_VERSION;
  manifest_.blocks = model_->config().num_layers;
  rundir::write_manifest(dir_, manifest_);
}

// Calibration activations (inputs on both chains and targets): on the GPU when they fit in the
// measured free memory with room to spare, otherwise in pinned host memory, streamed per batch.
void BlockwiseRun::place_activations() {
  const double act_bytes = 3.0 * static_cast<double>(calib_.samples) * static_cast<double>(calib_.seq_len) *
                           static_cast<double>(model_->config().hidden_size) * 4.0;
  if (device_.is_cuda()) {
    const auto free_bytes = runtime::free_device_memory(device_);
    if (free_bytes > 0 && act_bytes < 0.5 * static_cast<double>(free_bytes)) {
      store_ = device_;
      placement_ = "gpu";
    } else {
      placement_ = "pinned host memory";
    }
  }
  log("calibration: " + std::to_string(calib_.samples) + " x " + std::to_string(calib_.seq_len) + " tokens from " +
      calib_.source + " (seed " + std::to_string(calib_.seed) + ", sha256 " + calib_.token_sha256.substr(0, 16) +
      "...); activations " + std::to_string(act_bytes / (1 << 20)) + " MiB kept in " + placement_);
}

// Reports the start, embeds the calibration windows into both chains (x_fp = x_q at first) and
// makes the method.
void BlockwiseRun::start_chains() {
  const auto& mc = model_->config();
  rundir::RunEvent started;
  started.kind = rundir::RunEvent::Kind::RunStarted;
  started.total_blocks = mc.num_layers;
  started.message =
      config_.method + " " + config_.weight.label() + (config_.act_bits ? " A" + std::to_string(config_.act_bits) : "");
  events_.on_event(started);

  torch::NoGradGuard no_grad;
  ids_ =
      torch::from_blob(const_cast<std::int32_t*>(calib_.tokens.data()), {calib_.samples, calib_.seq_len}, torch::kInt32)
          .to(torch::kInt64);
  x_fp_ = torch::embedding(model_->weights().embed_tokens, ids_).to(torch::kFloat32);
  if (placement_ == "pinned host memory") x_fp_ = x_fp_.pin_memory();
  x_fp_ = x_fp_.to(store_);
  x_q_ = placement_ == "pinned host memory" ? x_fp_.clone().pin_memory() : x_fp_.clone();
  rope_ = model::make_rope_tables(mc, calib_.seq_len, device_, torch::kFloat32);
  method_ = make_block_method(config_);

  summary_.run_dir = dir_.path();
  summary_.blocks = mc.num_layers;
  summary_.calibration_sha256 = calib_.token_sha256;
  summary_.placement = placement_;
  // A small block's operations are too small to split across cores. TesseraQ steps of 4 x 128
  // tokens on the 2-core machine (tessera_bench_tesseraq_step, fp32, ms per step on 1 / 2 threads):
  // hidden 64 10.8 / 28.0, 256 72 / 112, 512 215-254 / 300-317, 1024 969 / 717. Below the work of
  // that last one (step tokens x hidden = 2^19) the blocks run on one intra-op thread.
  const auto step_tokens = calib_.seq_len * std::min(config_.settings.integer("tesseraq", "batch"), calib_.samples);
  if (device_.is_cpu() && torch::get_num_threads() > 1 && step_tokens * mc.hidden_size < (std::int64_t{1} << 19)) {
    one_thread_.emplace(1);
    log("blocks on one CPU thread: " + std::to_string(step_tokens) + " tokens x hidden " +
        std::to_string(mc.hidden_size) + " per step are too small to split");
  }
}

QuantizedBlock BlockwiseRun::quantize_or_restore(std::int64_t k, const model::DecoderBlockWeights& fp_weights,
                                                 const torch::Tensor& targets, bool restored) {
  if (restored) {
    auto qblock = QuantizedBlock::load(dir_.block_path(k), config_.weight);
    ++summary_.restored_blocks;
    log("block " + std::to_string(k) + ": restored from " + dir_.block_path(k));
    return qblock;
  }
  BlockContext ctx;
  ctx.index = k;
  ctx.config = &model_->config();
  ctx.run = &config_;
  ctx.rope = rope_;
  ctx.inputs_quant = x_q_;
  ctx.inputs_fp = x_fp_;
  ctx.targets = targets;
  ctx.device = device_;
  ctx.events = &events_;
  ctx.stop = stop_;
  auto qblock = method_->quantize_block(fp_weights, ctx);
  stop_.throw_if_stopped();
  return qblock;
}

void BlockwiseRun::process_block(std::int64_t k) {
  const auto& mc = model_->config();
  torch::NoGradGuard no_grad;
  stop_.throw_if_stopped();
  const auto block_start = std::chrono::steady_clock::now();
  rundir::RunEvent e;
  e.kind = rundir::RunEvent::Kind::BlockStarted;
  e.block = k;
  e.total_blocks = mc.num_layers;
  events_.on_event(e);

  const auto fp_weights = block_on(model_->weights().blocks[static_cast<std::size_t>(k)], device_);
  auto targets = run_block(mc, fp_weights, x_fp_, rope_, device_, config_.batch_size, 0);
  // A resumed run's finished block: its codes and statistics are read back (a damaged statistics
  // file makes the block be computed again).
  std::optional<rundir::BlockStats> saved;
  if (resume_ && dir_.has_finished_block(k)) saved = rundir::read_block_stats(dir_, k);
  const bool restored = saved.has_value();
  const QuantizedBlock qblock = quantize_or_restore(k, fp_weights, targets, restored);
  const auto q_weights = qblock.dequantized(device_, torch::kFloat32);
  const auto rtn_weights = quantize_block_rtn(fp_weights, config_.weight, k).dequantized(device_, torch::kFloat32);
  const double loss_rtn =
      eval::block_output_loss(mc, rtn_weights, x_q_, targets, rope_, device_, config_.batch_size, config_.act_bits);
  const double loss =
      eval::block_output_loss(mc, q_weights, x_q_, targets, rope_, device_, config_.batch_size, config_.act_bits);
  std::vector<eval::LayerStats> layers;
  if (restored) {
    layers = saved->layers;
  } else {
    layers = eval::compute_layer_stats(mc, qblock, k, x_q_, rope_, device_, config_.batch_size);
    // Codes first, then stats: a block counts as finished only when both are on disk.
    qblock.save(dir_.block_path(k),
                {{"format", "pt"}, {"tessera_block", std::to_string(k)}, {"method", config_.method}});
    rundir::write_block_stats(dir_, k, {loss_rtn, loss, layers});
  }
  for (const auto& s : layers) {
    rundir::RunEvent le;
    le.kind = rundir::RunEvent::Kind::LayerStats;
    le.block = k;
    le.layer = s.layer;
    le.rel_weight_error = s.rel_weight_error;
    le.output_mse = s.output_mse;
    le.flip_ratio = s.flip_ratio;
    le.dst_min = s.dst_min;
    le.dst_max = s.dst_max;
    le.dst_std = s.dst_std;
    events_.on_event(le);
    summary_.layers.push_back(s);
  }
  summary_.loss_rtn.push_back(loss_rtn);
  summary_.loss.push_back(loss);
  x_q_ = run_block(mc, q_weights, x_q_, rope_, device_, config_.batch_size, config_.act_bits);
  x_fp_ = targets;

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - block_start).count();
  if (!restored) {
    method_seconds_ += secs;
    ++computed_;
  }
  rundir::RunEvent done;
  done.kind = rundir::RunEvent::Kind::BlockFinished;
  done.block = k;
  done.total_blocks = mc.num_layers;
  done.loss_rtn = loss_rtn;
  done.loss = loss;
  done.seconds = secs;
  done.eta_seconds =
      computed_ ? method_seconds_ / static_cast<double>(computed_) * static_cast<double>(mc.num_layers - 1 - k) : 0;
  events_.on_event(done);
}

RunSummary BlockwiseRun::finish() {
  summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  manifest_.finished = true;
  manifest_.seconds = summary_.seconds;
  manifest_.placement = placement_;
  rundir::write_manifest(dir_, manifest_);
  rundir::RunEvent finished;
  finished.kind = rundir::RunEvent::Kind::RunFinished;
  finished.seconds = summary_.seconds;
  events_.on_event(finished);
  return summary_;
}

}  // namespace

RunSummary run_quantization(const RunConfig& config, const std::string& run_dir, bool resume, rundir::EventSink& events,
                            const StopToken& stop) {
  BlockwiseRun run(config, run_dir, resume, events, stop);
  for (std::int64_t k = 0; k < run.blocks(); ++k) run.process_block(k);
  return run.finish();
}

namespace {

// The run's original model, refused when the file changed since the run was made.
model::LlamaModel load_run_model(const RunConfig& config, const std::string& model_sha256, const std::string& run_dir) {
  if (hash_model_files(config.model) != model_sha256)
    throw Error("the model " + config.model + " changed since the run " + run_dir + " was made");
  return model::load_model(config.model);
}

}  // namespace

RunRecord read_run_manifest(const std::string& run_dir, bool require_finished) {
  const rundir::RunDirectory dir(run_dir);
  RunRecord r;
  r.manifest = rundir::read_manifest(dir);
  if (require_finished && !r.manifest.finished)
    throw Error(run_dir + " is an unfinished run; finish it with `tessera quantize --resume` first");
  r.config = RunConfig::from_json_text(r.manifest.config.dump(), dir.manifest_path());
  return r;
}

model::LlamaModel load_quantized_model(const std::string& run_dir, RunConfig* config_out) {
  const rundir::RunDirectory dir(run_dir);
  const auto run = read_run_manifest(run_dir, /*require_finished=*/true);
  const auto& config = run.config;
  auto model = load_run_model(config, run.manifest.fingerprint.model_sha256, run_dir);
  // One block's codes in memory at a time.
  for (std::int64_t k = 0; k < model.config().num_layers; ++k) {
    const auto q = QuantizedBlock::load(dir.block_path(k), config.weight);
    model.weights().blocks[static_cast<std::size_t>(k)] = q.dequantized(torch::kCPU, torch::kFloat32);
  }
  model.set_activation_bits(config.act_bits);
  if (config_out) *config_out = config;
  return model;
}

model::LlamaModel quantized_model_from_blocks(const RunConfig& config, const std::string& model_sha256,
                                              const std::vector<QuantizedBlock>& blocks, const std::string& run_dir) {
  auto model = load_run_model(config, model_sha256, run_dir);
  if (static_cast<std::int64_t>(blocks.size()) != model.config().num_layers)
    throw Error("the run " + run_dir + " has " + std::to_string(blocks.size()) + " blocks, its model has " +
                std::to_string(model.config().num_layers));
  for (std::size_t k = 0; k < blocks.size(); ++k)
    model.weights().blocks[k] = blocks[k].dequantized(torch::kCPU, torch::kFloat32);
  model.set_activation_bits(config.act_bits);
  return model;
}

}  // namespace tessera::pipeline
