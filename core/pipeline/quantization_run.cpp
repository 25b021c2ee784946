#include "pipeline/quantization_run.h"

#include <torch/version.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "model/model_loader.h"
#include "model/quantized_block.h"
#include "pipeline/block_method.h"
#include "pipeline/run_directory.h"
#include "runtime/torch_runtime.h"
#include "text/calibration.h"
#include "text/text_file.h"
#include "text/tokenizer_loader.h"
#include "util/error.h"
#include "util/log.h"
#include "util/version.h"

namespace tessera::pipeline {

using nlohmann::json;

namespace {

void write_json(const std::string& path, const json& j) {
  io::write_file_atomically(path, [&](std::ostream& out) { out << j.dump(2) << "\n"; });
}

RunFingerprint fingerprint_from(const json& j) {
  RunFingerprint f;
  f.model_sha256 = j.value("model_sha256", "");
  f.config = j.value("config_identity", "");
  f.calibration_sha256 = j.value("calibration_sha256", "");
  f.code_version = j.value("code_version", "");
  return f;
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

json stats_json(const std::vector<eval::LayerStats>& layers, double before, double after) {
  json j = {{"loss_rtn", before}, {"loss", after}, {"layers", json::array()}};
  for (const auto& s : layers)
    j["layers"].push_back({{"layer", s.layer},
                           {"rel_weight_error", s.rel_weight_error},
                           {"output_mse", s.output_mse},
                           {"flip_ratio", s.flip_ratio},
                           {"dst_min", s.dst_min},
                           {"dst_max", s.dst_max},
                           {"dst_std", s.dst_std}});
  return j;
}

}  // namespace

RunSummary run_quantization(const RunConfig& config, const std::string& run_dir, bool resume, EventSink& events,
                            const StopToken& stop) {
  config.validate();
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto log = [&](const std::string& m) {
    logger()->info("{}", m);
    events.on_event(RunEvent::log(-1, m));
  };
  const auto device = runtime::parse_device(config.device);
  auto model = model::load_model(config.model);
  const auto& mc = model.config();
  const std::string tokenizer_path =
      config.tokenizer.empty() ? text::find_tokenizer_for_model(config.model) : config.tokenizer;
  if (tokenizer_path.empty()) throw Error("no tokenizer found beside " + config.model + "; set \"tokenizer\"");
  auto tokenizer = text::load_tokenizer(tokenizer_path);
  text::check_tokenizer_matches_model(*tokenizer, mc.vocab_size, config.model);
  if (config.weight.superblock_levels > 0) {  // GGUF k-quants: whole super-blocks per row
    const auto columns = quant::WeightQuantSpec::kSuperBlockColumns;
    for (const auto& [what, in] : {std::pair<const char*, std::int64_t>{"hidden size", mc.hidden_size},
                                   {"attention width (heads x head dim)", mc.num_heads * mc.head_dim},
                                   {"intermediate size", mc.intermediate_size}})
      if (in % columns != 0)
        throw Error("target " + config.target + " stores rows in super-blocks of " + std::to_string(columns) +
                    " weights, but " + config.model + " has a " + what + " of " + std::to_string(in) +
                    "; a target of 32-weight blocks (gguf-q4_0 ... gguf-q8_0) fits any multiple of 32");
  }
  if (config.seq_len > mc.max_position_embeddings)
    throw Error("calibration seq_len " + std::to_string(config.seq_len) + " exceeds the model's context of " +
                std::to_string(mc.max_position_embeddings));
  stop.throw_if_stopped();
  const auto calib = text::sample_calibration(*tokenizer, config.calib, config.samples, config.seq_len, config.seed);

  RunFingerprint fp;
  fp.model_sha256 = hash_model_files(config.model);
  fp.config = config.identity_json();
  fp.calibration_sha256 = calib.token_sha256;
  fp.code_version = kVersion;

  RunDirectory dir(run_dir);
  dir.create();
  const RunDirectoryLock lock(dir);
  if (dir.has_manifest()) {
    if (!resume) throw Error(run_dir + " already holds a run; pass --resume to continue it, or choose another --out");
    const auto old = fingerprint_from(io::read_json_file(dir.manifest_path()));
    const auto diff = old.differences(fp);
    if (!diff.empty()) throw Error("cannot resume " + run_dir + ": it was made with different inputs:\n" + diff);
  } else if (resume) {
    log("nothing to resume in " + run_dir + "; starting a new run");
  }
  json manifest = {{"format", "tessera-run"},
                   {"config", json::parse(config.to_json_text())},
                   {"config_identity", fp.config},
                   {"model_sha256", fp.model_sha256},
                   {"calibration_sha256", fp.calibration_sha256},
                   {"calibration",
                    {{"source", calib.source},
                     {"samples", calib.samples},
                     {"seq_len", calib.seq_len},
                     {"seed", calib.seed},
                     {"offsets", calib.offsets},
                     {"corpus_tokens", calib.corpus_tokens},
                     {"newlines", text::kNewlineHandling}}},
                   {"tokenizer", tokenizer_path},
                   {"code_version", kVersion},
                   {"torch_version", TORCH_VERSION},
                   {"blocks", mc.num_layers},
                   {"finished", false}};
  write_json(dir.manifest_path(), manifest);

  // Calibration activations (inputs on both chains and targets): on the GPU when they fit in the
  // measured free memory with room to spare, otherwise in pinned host memory, streamed per batch.
  const double act_bytes = 3.0 * static_cast<double>(calib.samples) * static_cast<double>(calib.seq_len) *
                           static_cast<double>(mc.hidden_size) * 4.0;
  torch::Device store = torch::kCPU;
  std::string placement = "cpu";
  if (device.is_cuda()) {
    const auto free_bytes = runtime::free_device_memory(device);
    if (free_bytes > 0 && act_bytes < 0.5 * static_cast<double>(free_bytes)) {
      store = device;
      placement = "gpu";
    } else {
      placement = "pinned host memory";
    }
  }
  log("calibration: " + std::to_string(calib.samples) + " x " + std::to_string(calib.seq_len) + " tokens from " +
      calib.source + " (seed " + std::to_string(calib.seed) + ", sha256 " + calib.token_sha256.substr(0, 16) +
      "...); activations " + std::to_string(act_bytes / (1 << 20)) + " MiB kept in " + placement);

  RunEvent started;
  started.kind = RunEvent::Kind::RunStarted;
  started.total_blocks = mc.num_layers;
  started.message =
      config.method + " " + config.weight.label() + (config.act_bits ? " A" + std::to_string(config.act_bits) : "");
  events.on_event(started);

  torch::NoGradGuard no_grad;
  auto ids =
      torch::from_blob(const_cast<std::int32_t*>(calib.tokens.data()), {calib.samples, calib.seq_len}, torch::kInt32)
          .to(torch::kInt64);
  auto x_fp = torch::embedding(model.weights().embed_tokens, ids).to(torch::kFloat32);
  if (placement == "pinned host memory") x_fp = x_fp.pin_memory();
  x_fp = x_fp.to(store);
  auto x_q = placement == "pinned host memory" ? x_fp.clone().pin_memory() : x_fp.clone();
  const auto rope = model::make_rope_tables(mc, calib.seq_len, device, torch::kFloat32);
  auto method = make_block_method(config);

  RunSummary summary;
  summary.run_dir = run_dir;
  summary.blocks = mc.num_layers;
  summary.calibration_sha256 = calib.token_sha256;
  summary.placement = placement;
  double method_seconds = 0;
  std::int64_t computed = 0;
  // A small block's operations are too small to split across cores. TesseraQ steps of 4 x 128
  // tokens on the 2-core machine (tessera_bench_tesseraq_step, fp32, ms per step on 1 / 2 threads):
  // hidden 64 10.8 / 28.0, 256 72 / 112, 512 215-254 / 300-317, 1024 969 / 717. Below the work of
  // that last one (step tokens x hidden = 2^19) the blocks run on one intra-op thread.
  std::optional<runtime::ScopedIntraOpThreads> one_thread;
  const auto step_tokens = calib.seq_len * std::min(config.settings.integer("tesseraq", "batch"), calib.samples);
  if (device.is_cpu() && torch::get_num_threads() > 1 && step_tokens * mc.hidden_size < (std::int64_t{1} << 19)) {
    one_thread.emplace(1);
    log("blocks on one CPU thread: " + std::to_string(step_tokens) + " tokens x hidden " +
        std::to_string(mc.hidden_size) + " per step are too small to split");
  }
  for (std::int64_t k = 0; k < mc.num_layers; ++k) {
    stop.throw_if_stopped();
    const auto block_start = std::chrono::steady_clock::now();
    RunEvent e;
    e.kind = RunEvent::Kind::BlockStarted;
    e.block = k;
    e.total_blocks = mc.num_layers;
    events.on_event(e);

    const auto fp_weights = block_on(model.weights().blocks[static_cast<std::size_t>(k)], device);
    auto targets = run_block(mc, fp_weights, x_fp, rope, device, config.batch_size, 0);
    QuantizedBlock qblock;
    const bool restored = resume && dir.has_block(k) && std::filesystem::exists(dir.stats_path(k));
    if (restored) {
      qblock = QuantizedBlock::load(dir.block_path(k), config.weight);
      ++summary.restored_blocks;
      log("block " + std::to_string(k) + ": restored from " + dir.block_path(k));
    } else {
      BlockContext ctx;
      ctx.index = k;
      ctx.config = &mc;
      ctx.run = &config;
      ctx.rope = rope;
      ctx.inputs_quant = x_q;
      ctx.inputs_fp = x_fp;
      ctx.targets = targets;
      ctx.device = device;
      ctx.events = &events;
      ctx.stop = stop;
      qblock = method->quantize_block(fp_weights, ctx);
      stop.throw_if_stopped();
    }
    const auto q_weights = qblock.dequantized(device, torch::kFloat32);
    const auto rtn_weights = quantize_block_rtn(fp_weights, config.weight, k).dequantized(device, torch::kFloat32);
    const double before =
        eval::block_output_loss(mc, rtn_weights, x_q, targets, rope, device, config.batch_size, config.act_bits);
    const double after =
        eval::block_output_loss(mc, q_weights, x_q, targets, rope, device, config.batch_size, config.act_bits);
    std::vector<eval::LayerStats> layers;
    if (restored) {
      const auto j = io::read_json_file(dir.stats_path(k));
      for (const auto& l : j["layers"])
        layers.push_back({k, l["layer"].get<std::string>(), l["rel_weight_error"].get<double>(),
                          l["output_mse"].get<double>(), l["flip_ratio"].get<double>(), l.value("dst_min", 1.0),
                          l.value("dst_max", 1.0), l.value("dst_std", 0.0)});
    } else {
      layers = eval::compute_layer_stats(mc, qblock, k, x_q, rope, device, config.batch_size);
      // Codes first, then stats: a block counts as finished only when both are on disk.
      qblock.save(dir.block_path(k),
                  {{"format", "pt"}, {"tessera_block", std::to_string(k)}, {"method", config.method}});
      write_json(dir.stats_path(k), stats_json(layers, before, after));
    }
    for (const auto& s : layers) {
      RunEvent le;
      le.kind = RunEvent::Kind::LayerStats;
      le.block = k;
      le.layer = s.layer;
      le.rel_weight_error = s.rel_weight_error;
      le.output_mse = s.output_mse;
      le.flip_ratio = s.flip_ratio;
      le.dst_min = s.dst_min;
      le.dst_max = s.dst_max;
      le.dst_std = s.dst_std;
      events.on_event(le);
      summary.layers.push_back(s);
    }
    summary.loss_rtn.push_back(before);
    summary.loss.push_back(after);
    x_q = run_block(mc, q_weights, x_q, rope, device, config.batch_size, config.act_bits);
    x_fp = targets;

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - block_start).count();
    if (!restored) {
      method_seconds += secs;
      ++computed;
    }
    RunEvent done;
    done.kind = RunEvent::Kind::BlockFinished;
    done.block = k;
    done.total_blocks = mc.num_layers;
    done.value = after;
    done.before = before;
    done.seconds = secs;
    done.eta_seconds =
        computed ? method_seconds / static_cast<double>(computed) * static_cast<double>(mc.num_layers - 1 - k) : 0;
    events.on_event(done);
  }
  summary.seconds = elapsed();
  manifest["finished"] = true;
  manifest["seconds"] = summary.seconds;
  manifest["placement"] = placement;
  write_json(dir.manifest_path(), manifest);
  RunEvent finished;
  finished.kind = RunEvent::Kind::RunFinished;
  finished.seconds = summary.seconds;
  events.on_event(finished);
  return summary;
}

namespace {

// The run's original model, refused when the file changed since the run was made.
model::LlamaModel load_run_model(const RunConfig& config, const std::string& model_sha256, const std::string& run_dir) {
  if (hash_model_files(config.model) != model_sha256)
    throw Error("the model " + config.model + " changed since the run " + run_dir + " was made");
  return model::load_model(config.model);
}

}  // namespace

RunManifest read_run_manifest(const std::string& run_dir, bool require_finished) {
  RunDirectory dir(run_dir);
  if (!dir.has_manifest()) throw Error(run_dir + " is not a Tessera run directory (no run.json)");
  RunManifest m;
  m.json = io::read_json_file(dir.manifest_path());
  if (!m.json.contains("config")) throw Error(dir.manifest_path() + " is not a run manifest (no \"config\")");
  if (require_finished && !m.json.value("finished", false))
    throw Error(run_dir + " is an unfinished run; finish it with `tessera quantize --resume` first");
  m.config = RunConfig::from_json_text(m.json["config"].dump(), dir.manifest_path());
  return m;
}

model::LlamaModel load_quantized_model(const std::string& run_dir, RunConfig* config_out) {
  RunDirectory dir(run_dir);
  const auto manifest = read_run_manifest(run_dir, /*require_finished=*/true);
  const auto& config = manifest.config;
  auto model = load_run_model(config, manifest.json.value("model_sha256", ""), run_dir);
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
