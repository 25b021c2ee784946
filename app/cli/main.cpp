// tessera: the headless command line. Every subcommand prints a human-readable report, or one JSON
// object with --json; errors print "error: ..." and exit with status 1 (2 for usage errors).
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api/device_memory.h"
#include "api/export_jobs.h"
#include "api/model_jobs.h"
#include "api/quantize_jobs.h"
#include "cli/cli_options.h"
#include "cli/worker.h"
#include "methods/method_registry.h"
#include "pipeline/memory_forecast.h"
#include "pipeline/run_presets.h"
#include "runtime/error_message.h"
#include "util/error.h"
#include "util/log.h"
#include "util/version.h"

using nlohmann::json;
using tessera::cli::CliOptions;

namespace {

const char* kUsage = R"(tessera - quantization workbench for LLaMA-family models (command line)

usage: tessera <command> [options]

commands:
  info      --model P [--json]
            architecture of a model (llama2.c .bin or Hugging Face folder) without loading weights
  tokenize  --tokenizer P --text F [--no-bos] [--ids] [--json]
            number of tokens of a text file (one BOS at the start unless --no-bos); --ids
            prints the token ids
  generate  --model P|--run DIR [--tokenizer P] [--prompt S] [--max-tokens N] [--temperature T] [--top-p P]
            [--seed N] [--device cpu|cuda] [--dtype fp32|fp16|bf16] [--json]
            text generation; greedy at temperature 0 (the default)
  eval      --model P [--tokenizer P] --text F [--seq-len N] [--batch N] [--device cpu|cuda]
            [--dtype fp32|fp16|bf16] [--json]
            perplexity: one tokenization with one BOS, non-overlapping windows of --seq-len
            (default min(2048, model context)), trailing tokens dropped, fp32 loss
  quantize  --model P [--tokenizer P] --calib F --out DIR [--method {METHODS}]
            [--preset NAME|FILE] [--wbits N] [--group N] [--sym] [--target T] [--abits N] [--samples N]
            [--seq-len N] [--seed N] [--device cpu|cuda] [--batch N] [--config run.json]
            [--resume] [--eval F] [--force] [--json] [method options, below]
            block-wise quantization; --group 0 = per channel; every finished block is saved in
            DIR, --resume continues an interrupted run; --eval F scores the result on F;
            --lr sets both TesseraQ learning rates unless --scale-lr is given; --target
            gguf-q4_0|gguf-q4_1|gguf-q5_0|gguf-q5_1|gguf-q8_0 (groups of 32, fp16 scales) or
            gguf-q2_k|gguf-q3_k|gguf-q4_k|gguf-q5_k|gguf-q6_k (super-blocks of 256: fp16 scale
            times small integer scales per 16 or 32, and for q2_k/q4_k/q5_k integer mins; rows
            of other widths take llama.cpp's fallback type) restricts the grid to exactly what that GGUF block type stores, so `export
            --format` of the same name is bit-exact (none: no target); presets
            (resources/presets: W2A16g128, W2A16g64, W2A16, W3A16g128, W4A16, W4A4, cpu-quick)
            apply first, the other options override them; before any work the peak host and
            GPU memory is forecast (as `plan` prints it) and the run refused, naming settings
            that would fit, when it exceeds the available memory (--force runs anyway)
  plan      the options of quantize (--out not needed) [--json]
            the memory forecast of that run without running it: peak host and GPU memory with
            an itemised breakdown, and whether it fits this machine
{METHOD_OPTIONS}  eval      --run DIR --text F ...   scores a finished quantization run's fake-quantized model
  export    --run DIR --out PATH [--format F] [--dtype fp16|bf16|fp32] [--force] [--json]
            a finished run, written atomically and self-checked against the run's codes (read
            back with the format's own reader conventions) before it is put in place. F:
              hf         fake-quant Hugging Face folder (weights = dequantized codes; default)
              gptq       GPTQ folder, checkpoint_format gptq_v2 (2/3/4/8-bit, true zeros)
              gptq-v1    GPTQ folder, checkpoint_format gptq (only when every zero point >= 1)
              awq        AWQ-GEMM folder (4-bit with groups)
              gguf-f32, gguf-f16   GGUF file for llama.cpp
              gguf-q4_0, gguf-q4_1, gguf-q5_0, gguf-q5_1, gguf-q8_0,
              gguf-q2_k, gguf-q3_k, gguf-q4_k, gguf-q5_k, gguf-q6_k   GGUF with those blocks from
                         the codes where they decode bit-identically (always after quantize
                         --target of the same name), F32 elsewhere
            --dtype sets the float tensors and the GPTQ/AWQ scales (fp32 = the run's numbers
            exactly; the gguf-* formats fix their own types); layers a format cannot hold are
            written as floats and listed
  export    --run DIR --formats [--json]   the formats, and why each cannot hold this run
  convert   --model P [--tokenizer P] --out DIR|FILE.gguf [--dtype fp32|fp16|bf16] [--force]
            write a Hugging Face folder (config.json + model.safetensors) or, for an output
            ending in .gguf, a llama GGUF file (F32/F16/BF16, tokenizer embedded), atomically
  worker    serve the workbench's jobs as JSON lines on stdin/stdout (docs/worker-protocol.md);
            the workbench starts it on this machine or over SSH

The tokenizer defaults to the one beside the model (tokenizer.json, tokenizer.model, tokenizer.bin
or tok*.bin).
Options: --verbose (debug logging), --quiet (errors only), --help, --version.
)";

// The method options of quantize and plan, from the methods' declarations (methods/*_settings.cpp):
// each method's line, then its settings' options with their defaults.
std::string method_options_help() {
  using tessera::methods::SettingType;
  std::string out = "            method options (a method's section of run.json; default in brackets):\n";
  for (const auto& m : tessera::methods::methods()) {
    char line[256];
    std::snprintf(line, sizeof line, "              %-10s %s\n", m.id.c_str(), m.help.c_str());
    out += line;
    for (const auto& s : m.settings) {
      if (s.cli.empty()) continue;
      std::string value;
      switch (s.type) {
        case SettingType::Int:
          value = "N";
          break;
        case SettingType::Number:
          value = "X";
          break;
        case SettingType::Flag:
          value = "true|false";
          break;
        case SettingType::Choice:
          for (const auto& c : s.choices) value += (value.empty() ? "" : "|") + c;
          break;
        case SettingType::Text:
          value = "S";
          break;
      }
      tessera::methods::MethodSettings defaults;
      const std::string option = "--" + s.cli + " " + value;
      std::snprintf(line, sizeof line, "                %-28s %s [%s]\n", option.c_str(), s.help.c_str(),
                    defaults.to_text(m.id, s.key).c_str());
      out += line;
    }
  }
  return out;
}

std::string usage() {
  std::string text = kUsage;
  const auto replace = [&](const std::string& what, const std::string& with) {
    text.replace(text.find(what), what.size(), with);
  };
  replace("{METHODS}", tessera::methods::method_ids("|"));
  replace("{METHOD_OPTIONS}", method_options_help());
  return text;
}

// The quantize/plan options of the methods' settings.
std::set<std::string> method_cli_options() {
  std::set<std::string> out;
  for (const auto& m : tessera::methods::methods())
    for (const auto& s : m.settings)
      if (!s.cli.empty()) out.insert(s.cli);
  return out;
}

json summary_json(const tessera::api::ModelSummary& s) {
  const auto& c = s.config;
  return {{"path", s.path},
          {"format", s.format},
          {"architecture", c.architecture},
          {"layers", c.num_layers},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"heads", c.num_heads},
          {"kv_heads", c.num_kv_heads},
          {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size},
          {"context", c.max_position_embeddings},
          {"rope_theta", c.rope_theta},
          {"rope_scaling", c.rope_scaling.type},
          {"tied_embeddings", c.tie_word_embeddings},
          {"attention_bias", c.attention_bias},
          {"dtype", c.torch_dtype},
          {"parameters", s.parameters},
          {"tokenizer", s.tokenizer_path}};
}

int run_info(const CliOptions& o) {
  const auto s = tessera::api::describe_model(o.require("model"));
  if (o.flag("json")) {
    std::cout << summary_json(s).dump() << "\n";
    return 0;
  }
  const auto& c = s.config;
  std::printf("model        %s\nformat       %s (%s, stored as %s)\n", s.path.c_str(), s.format.c_str(),
              c.architecture.c_str(), c.torch_dtype.c_str());
  std::printf("layers       %lld\nhidden       %lld\nffn          %lld\nheads        %lld (kv %lld, head_dim %lld)\n",
              (long long)c.num_layers, (long long)c.hidden_size, (long long)c.intermediate_size, (long long)c.num_heads,
              (long long)c.num_kv_heads, (long long)c.head_dim);
  std::printf("vocab        %lld%s\ncontext      %lld\nrope         theta %g, scaling %s\n", (long long)c.vocab_size,
              c.tie_word_embeddings ? " (tied embeddings)" : "", (long long)c.max_position_embeddings, c.rope_theta,
              c.rope_scaling.type.c_str());
  std::printf("parameters   %lld\ntokenizer    %s\n", (long long)s.parameters,
              s.tokenizer_path.empty() ? "(none found beside the model)" : s.tokenizer_path.c_str());
  return 0;
}

int run_tokenize(const CliOptions& o) {
  const auto count = tessera::api::count_tokens(o.require("tokenizer"), o.require("text"), !o.flag("no-bos"));
  if (o.flag("json")) {
    json j{{"tokens", count.tokens},
           {"bos", !o.flag("no-bos")},
           {"tokenizer", count.tokenizer_kind},
           {"vocab_size", count.vocab_size}};
    if (o.flag("ids")) j["ids"] = count.ids;
    std::cout << j.dump() << "\n";
  } else if (o.flag("ids")) {
    for (std::size_t i = 0; i < count.ids.size(); ++i) std::cout << (i ? " " : "") << count.ids[i];
    std::cout << "\n";
  } else {
    std::cout << count.tokens << "\n";
  }
  return 0;
}

int run_generate(const CliOptions& o) {
  tessera::api::GenerateRequest r;
  r.run_dir = o.get("run");
  r.model_path = r.run_dir.empty() ? o.require("model") : "";
  r.tokenizer_path = o.get("tokenizer");
  r.prompt = o.get("prompt");
  r.max_tokens = o.get_int("max-tokens", 256);
  r.temperature = o.get_double("temperature", 0.0);
  r.top_p = o.get_double("top-p", 1.0);
  r.seed = static_cast<std::uint64_t>(o.get_int("seed", 42));
  r.device = o.get("device", "cpu");
  r.dtype = o.get("dtype", "fp32");
  const bool as_json = o.flag("json");
  if (!as_json) std::cout << r.prompt << std::flush;
  const std::string text = tessera::api::generate(r, [&](const std::string& piece) {
    if (!as_json) std::cout << piece << std::flush;
  });
  if (as_json) {
    std::cout << json{{"prompt", r.prompt}, {"text", text}, {"temperature", r.temperature}, {"seed", r.seed}}.dump()
              << "\n";
  } else {
    std::cout << "\n";
  }
  return 0;
}

int run_eval(const CliOptions& o) {
  tessera::api::EvalRequest r;
  r.run_dir = o.get("run");
  r.model_path = r.run_dir.empty() ? o.require("model") : "";
  r.tokenizer_path = o.get("tokenizer");
  r.text_path = o.require("text");
  r.seq_len = o.get_int("seq-len", 0);
  r.batch_size = o.get_int("batch", 1);
  r.device = o.get("device", "cpu");
  r.dtype = o.get("dtype", "fp32");
  const bool as_json = o.flag("json");
  const auto rep = tessera::api::evaluate_perplexity(r, [&](const tessera::api::EvalProgress& p) {
    if (!as_json && p.stage == "evaluating" && ::isatty(2))
      std::fprintf(stderr, "\r  window %lld/%lld  ppl %.4f", (long long)p.windows_done, (long long)p.windows_total,
                   p.running_perplexity);
  });
  if (!as_json) std::fprintf(stderr, "\n");
  if (as_json) {
    std::cout << json{{"ppl", rep.perplexity},
                      {"mean_loss", rep.mean_loss},
                      {"tokens", rep.text_tokens},
                      {"windows", rep.windows},
                      {"seq_len", rep.seq_len},
                      {"seconds", rep.seconds},
                      {"tokens_per_s", rep.tokens_per_second},
                      {"load_seconds", rep.load_seconds},
                      {"device", rep.device},
                      {"dtype", rep.dtype},
                      {"model", rep.model_path},
                      {"tokenizer", rep.tokenizer_path},
                      {"text", rep.text_path},
                      {"newlines", rep.newlines}}
                     .dump()
              << "\n";
  } else {
    std::printf(
        "ppl          %.6f\ntokens       %lld\nwindows      %lld x %lld\nseconds      %.3f\ntokens/s     %.1f\ndevice  "
        "     %s %s\n",
        rep.perplexity, (long long)rep.text_tokens, (long long)rep.windows, (long long)rep.seq_len, rep.seconds,
        rep.tokens_per_second, rep.device.c_str(), rep.dtype.c_str());
  }
  return 0;
}

// Prints one line per finished block with the losses and the ETA; with --verbose also the
// methods' own messages (AWQ's chosen alphas, TesseraQ's hardening) and the step losses.
class CliProgress : public tessera::rundir::EventSink {
 public:
  CliProgress(bool quiet, bool verbose) : quiet_(quiet), verbose_(verbose) {}
  void on_event(const tessera::rundir::RunEvent& e) override {
    using Kind = tessera::rundir::RunEvent::Kind;
    if (quiet_) return;
    if (e.kind == Kind::RunStarted) {
      total_ = e.total_blocks;
      std::fprintf(stderr, "quantizing %lld blocks: %s\n", (long long)e.total_blocks, e.message.c_str());
    } else if (e.kind == Kind::BlockFinished) {
      std::fprintf(stderr, "  block %lld/%lld  loss %.6g (RTN %.6g)  %.1f s  ETA %.0f s\n", (long long)e.block + 1,
                   (long long)total_, e.loss, e.loss_rtn, e.seconds, e.eta_seconds);
    } else if (verbose_ && e.kind == Kind::Log && e.block >= 0) {  // run-level lines go to the log
      std::fprintf(stderr, "    block %lld: %s\n", (long long)e.block + 1, e.message.c_str());
    } else if (verbose_ && e.kind == Kind::StepLoss) {
      std::fprintf(stderr, "    block %lld step %lld/%lld: loss %.6g\n", (long long)e.block + 1, (long long)e.step,
                   (long long)e.total_steps, e.train_loss);
    } else if (verbose_ && e.kind == Kind::HardFraction) {
      std::fprintf(stderr, "    block %lld PAR %lld/%lld: hard %.2f%% (target %.2f%%)\n", (long long)e.block + 1,
                   (long long)e.iteration + 1, (long long)e.total_iterations, 100.0 * e.hard_fraction,
                   100.0 * e.target_hard_fraction);
    }
  }

 private:
  bool quiet_, verbose_;
  std::int64_t total_ = 0;
};

// The run that quantize's (and plan's) options describe.
tessera::pipeline::RunConfig quantize_config(const CliOptions& o) {
  tessera::pipeline::RunConfig c;
  if (o.has("config")) c = tessera::pipeline::RunConfig::from_file(o.get("config"));
  if (o.has("preset")) c = tessera::pipeline::apply_preset(o.get("preset"), c);
  if (o.has("model")) c.model = o.get("model");
  if (o.has("tokenizer")) c.tokenizer = o.get("tokenizer");
  if (o.has("calib")) c.calib = o.get("calib");
  if (o.has("method")) c.method = o.get("method");
  c.weight.bits = o.get_int32("wbits", c.weight.bits);
  c.weight.group_size = o.get_int("group", c.weight.group_size);
  if (o.flag("sym")) c.weight.symmetric = true;
  if (o.has("target")) {
    c.target = o.get("target") == "none" ? "" : o.get("target");
    const auto stated = c.weight;
    c.apply_target();
    if ((o.has("wbits") && stated.bits != c.weight.bits) ||
        (o.has("group") && stated.group_size != c.weight.group_size) || (o.flag("sym") && !c.weight.symmetric))
      throw tessera::Error("--target " + c.target + " is " + c.weight.label() +
                           "; leave out --wbits/--group/--sym or match it");
  }
  c.act_bits = o.get_int32("abits", c.act_bits);
  if (c.act_bits >= 16) c.act_bits = 0;
  c.samples = o.get_int("samples", c.samples);
  c.seq_len = o.get_int("seq-len", c.seq_len);
  c.seed = static_cast<std::uint64_t>(o.get_int("seed", static_cast<long long>(c.seed)));
  c.device = o.get("device", c.device);
  c.batch_size = o.get_int("batch", c.batch_size);
  // The methods' settings, by their declared options (--lr also sets the DST lr unless --scale-lr).
  using tessera::methods::SettingType;
  for (const auto& m : tessera::methods::methods())
    for (const auto& s : m.settings) {
      if (s.cli.empty() || !o.has(s.cli)) continue;
      std::vector<const tessera::methods::Setting*> targets = {&s};
      if (const auto* also = m.find(s.cli_also_sets); also && !(!also->cli.empty() && o.has(also->cli)))
        targets.push_back(also);
      for (const auto* t : targets) {
        if (s.type == SettingType::Int)
          c.settings.set(m.id, t->key, static_cast<std::int64_t>(o.get_int(s.cli, 0)));
        else if (s.type == SettingType::Number)
          c.settings.set(m.id, t->key, o.get_double(s.cli, 0));
        else
          c.settings.set_from_text(m.id, t->key, o.get(s.cli));
      }
    }
  return c;
}

// What the forecast needs beyond the two configs, read from this machine and the options.
tessera::pipeline::ForecastOptions forecast_options(const CliOptions& o, const tessera::pipeline::RunConfig& c,
                                                    tessera::pipeline::MemoryBudget* budget) {
  tessera::pipeline::ForecastOptions f;
  struct stat st {};
  if (!c.calib.empty() && ::stat(c.calib.c_str(), &st) == 0) f.corpus_bytes = static_cast<double>(st.st_size);
  f.cpu_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));  // as configure_threads
  if (const char* env = std::getenv("TESSERA_THREADS")) f.cpu_threads = std::max(1, std::atoi(env));
  f.evaluate = o.has("eval");
  if (f.evaluate && ::stat(o.get("eval").c_str(), &st) == 0) f.eval_text_bytes = static_cast<double>(st.st_size);
  if (c.device.rfind("cuda", 0) == 0)
    for (const auto& d : tessera::api::list_devices())
      if (d.id == c.device || (c.device == "cuda" && d.id == "cuda:0")) f.gpu_free_bytes = d.free_bytes;
  if (budget) {
    // This process's pages are part of the forecast's baseline and not in MemAvailable.
    const double available = tessera::pipeline::host_available_bytes();
    budget->host_available_bytes = available < 0 ? -1 : available + tessera::api::resident_memory_bytes();
    budget->gpu_free_bytes = f.gpu_free_bytes;
  }
  return f;
}

json forecast_json(const tessera::pipeline::MemoryForecast& f) {
  auto terms = [](const std::vector<tessera::pipeline::MemoryTerm>& ts) {
    json a = json::array();
    for (const auto& t : ts) a.push_back({{"name", t.name}, {"bytes", t.bytes}, {"detail", t.detail}});
    return a;
  };
  return {
      {"host_bytes", f.host_bytes},         {"gpu_bytes", f.gpu_bytes},        {"host_peak_phase", f.host_peak_phase},
      {"gpu_peak_phase", f.gpu_peak_phase}, {"placement", f.placement},        {"activation_bytes", f.activation_bytes},
      {"host_terms", terms(f.host_terms)},  {"gpu_terms", terms(f.gpu_terms)}, {"notes", f.notes}};
}

int run_plan(const CliOptions& o) {
  auto c = quantize_config(o);
  const bool no_calib = c.calib.empty();  // --calib is optional here: the corpus is only read
  if (no_calib) c.calib = "(none)";
  c.validate();
  const auto model = tessera::api::describe_model(c.model).config;
  tessera::pipeline::MemoryBudget budget;
  const auto options = forecast_options(o, c, &budget);
  auto f = tessera::pipeline::forecast_memory(c, model, options);
  if (no_calib)
    f.notes.push_back(
        "no --calib: the memory of tokenizing the corpus (tens of bytes per byte of text) is not included");
  const auto refusal = tessera::pipeline::memory_refusal(f, c, model, options, budget);
  if (o.flag("json")) {
    auto j = forecast_json(f);
    j["method"] = c.method;
    j["device"] = c.device;
    j["samples"] = c.samples;
    j["seq_len"] = c.seq_len;
    j["batch"] = c.batch_size;
    j["corpus_bytes"] = options.corpus_bytes;
    j["cpu_threads"] = options.cpu_threads;
    j["host_available_bytes"] = budget.host_available_bytes;
    j["gpu_free_bytes"] = budget.gpu_free_bytes;
    j["fits"] = refusal.empty();
    if (!refusal.empty()) j["refusal"] = refusal;
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("%s %s, %lld samples x %lld tokens, batch %lld, on %s\n", c.method.c_str(), c.weight.label().c_str(),
              (long long)c.samples, (long long)c.seq_len, (long long)c.batch_size, c.device.c_str());
  std::cout << tessera::pipeline::format_memory_forecast(f);
  if (refusal.empty())
    std::printf("fits: %s host memory available%s\n",
                tessera::pipeline::format_bytes(budget.host_available_bytes).c_str(),
                budget.gpu_free_bytes >= 0
                    ? (", " + tessera::pipeline::format_bytes(budget.gpu_free_bytes) + " free on " + c.device).c_str()
                    : "");
  else
    std::printf("does not fit: %s\n", refusal.c_str());
  return 0;
}

int run_quantize(const CliOptions& o) {
  const auto c = quantize_config(o);
  const std::string out = o.require("out");
  // Pre-flight: the memory forecast, before any work; refused when it does not fit (--force).
  c.validate();
  const auto model = tessera::api::describe_model(c.model).config;
  tessera::pipeline::MemoryBudget budget;
  const auto fo = forecast_options(o, c, &budget);
  const auto forecast = tessera::pipeline::forecast_memory(c, model, fo);
  tessera::logger()->info("memory forecast: host {} (peak in {}){}",
                          tessera::pipeline::format_bytes(forecast.host_bytes), forecast.host_peak_phase,
                          forecast.gpu_bytes > 0 ? ", gpu " + tessera::pipeline::format_bytes(forecast.gpu_bytes) +
                                                       " (peak in " + forecast.gpu_peak_phase + ")"
                                                 : std::string());
  tessera::logger()->debug("{}", tessera::pipeline::format_memory_forecast(forecast));
  const auto refusal = tessera::pipeline::memory_refusal(forecast, c, model, fo, budget);
  if (!refusal.empty()) {
    if (!o.flag("force")) throw tessera::Error("not enough memory: " + refusal);
    tessera::logger()->warn("memory forecast exceeds what is available (--force): {}", refusal);
  }
  const bool as_json = o.flag("json");
  CliProgress progress(as_json || o.flag("quiet"), o.flag("verbose"));
  const auto rep = tessera::api::quantize(c, out, o.flag("resume"), progress);
  json result = {{"run", rep.run_dir},
                 {"method", c.method},
                 {"wbits", c.weight.bits},
                 {"group", c.weight.group_size},
                 {"abits", c.act_bits},
                 {"blocks", rep.blocks},
                 {"restored_blocks", rep.restored_blocks},
                 {"seconds", rep.seconds},
                 {"calibration_sha256", rep.calibration_sha256},
                 {"loss_rtn", rep.loss_rtn},
                 {"loss", rep.loss},
                 {"forecast_host_bytes", forecast.host_bytes},
                 {"forecast_gpu_bytes", forecast.gpu_bytes},
                 {"peak_rss_bytes", rep.peak_rss_bytes},
                 {"peak_gpu_bytes", rep.peak_gpu_bytes},
                 {"peak_gpu_reserved_bytes", rep.peak_gpu_reserved_bytes},
                 {"gpu_outside_allocator_bytes", rep.gpu_outside_allocator_bytes}};
  if (o.has("eval")) {
    tessera::api::EvalRequest r;
    r.run_dir = out;
    r.text_path = o.get("eval");
    r.device = c.device;
    r.batch_size = c.batch_size;
    const auto ev = tessera::api::evaluate_perplexity(r);
    result["ppl"] = ev.perplexity;
    result["eval_windows"] = ev.windows;
    result["eval_seq_len"] = ev.seq_len;
  }
  struct rusage usage {};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) result["max_rss_bytes"] = static_cast<double>(usage.ru_maxrss) * 1024.0;
  if (as_json) {
    std::cout << result.dump() << "\n";
  } else {
    std::printf("run          %s\nblocks       %lld (%lld restored)\nseconds      %.2f\ncalibration  %s\n",
                rep.run_dir.c_str(), (long long)rep.blocks, (long long)rep.restored_blocks, rep.seconds,
                rep.calibration_sha256.c_str());
    if (result.contains("ppl")) std::printf("ppl          %.6f\n", result["ppl"].get<double>());
  }
  return 0;
}

int run_export(const CliOptions& o) {
  if (o.flag("formats")) {
    const auto formats = tessera::api::export_formats_for_run(o.require("run"));
    if (o.flag("json")) {
      json list = json::array();
      for (const auto& f : formats)
        list.push_back({{"id", f.id}, {"label", f.label}, {"available", f.available}, {"reason", f.reason}});
      std::cout << list.dump() << "\n";
    } else {
      for (const auto& f : formats)
        std::printf("%-10s %s%s\n", f.id.c_str(), f.available ? "available   " : "unavailable ",
                    f.available ? f.label.c_str() : f.reason.c_str());
    }
    return 0;
  }
  tessera::api::ExportRequest r;
  r.run_dir = o.require("run");
  r.out = o.require("out");
  r.format = o.get("format", "hf");
  r.dtype = o.get("dtype", "fp16");
  r.replace_existing = o.flag("force");
  const auto e = tessera::api::export_run(r);
  if (o.flag("json")) {
    json fallbacks = json::array();
    for (const auto& t : e.fallbacks)
      fallbacks.push_back({{"tensor", t.tensor}, {"shape", t.shape}, {"type", t.type}, {"reason", t.reason}});
    std::cout << json{{"path", e.path},
                      {"format", e.format},
                      {"dtype", e.dtype},
                      {"bytes", e.bytes},
                      {"self_check", "passed"},
                      {"self_check_report", e.self_check},
                      {"tensors_checked", e.tensors_checked},
                      {"not_converted", e.not_converted},
                      {"fallbacks", fallbacks},
                      {"warnings", e.warnings}}
                     .dump()
              << "\n";
  } else {
    std::printf("wrote        %s (%s, %s)\nsize         %lld bytes\nself-check   passed: %s\n", e.path.c_str(),
                e.format.c_str(), e.dtype.c_str(), (long long)e.bytes, e.self_check.c_str());
    for (const auto& layer : e.not_converted) std::printf("not converted %s\n", layer.c_str());
    // llama.cpp's per-tensor fallback of a GGUF k-quant: written in that type, bit-exact as well.
    for (const auto& t : e.fallbacks) {
      std::string shape;
      for (auto n : t.shape) shape += (shape.empty() ? "" : " x ") + std::to_string(n);
      std::printf("fallback     %s [%s] %s: %s\n", t.tensor.c_str(), shape.c_str(), t.type.c_str(), t.reason.c_str());
    }
    for (const auto& w : e.warnings) std::printf("warning      %s\n", w.c_str());
  }
  return 0;
}

int run_convert(const CliOptions& o) {
  const auto written = tessera::api::convert_model(o.require("model"), o.get("tokenizer"), o.require("out"),
                                                   o.get("dtype", "fp32"), o.flag("force"));
  std::cout << "wrote " << written << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << usage();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "tessera " << tessera::kVersion << "\n";
    return 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  const std::set<std::string> common_flags = {"json", "verbose", "quiet"};
  // quantize and plan take the same options: plan forecasts the run quantize would make. The
  // methods' own options come from their declarations.
  std::set<std::string> kQuantizeOptions = {"model",  "tokenizer", "calib",  "out",     "method",  "wbits",
                                            "group",  "target",    "abits",  "samples", "seq-len", "seed",
                                            "device", "batch",     "config", "eval",    "preset"};
  for (const auto& option : method_cli_options()) kQuantizeOptions.insert(option);
  const std::set<std::string> kQuantizeFlags = {"sym", "resume", "force"};
  auto flags_with = [&](std::set<std::string> extra) {
    extra.insert(common_flags.begin(), common_flags.end());
    return extra;
  };
  try {
    tessera::api::initialize_runtime();
    auto parse = [&](const std::set<std::string>& values, const std::set<std::string>& flags) {
      CliOptions o(args, values, flags);
      if (o.flag("verbose")) tessera::logger()->set_level(spdlog::level::debug);
      if (o.flag("quiet") || o.flag("json")) tessera::logger()->set_level(spdlog::level::err);
      return o;
    };
    if (command == "info") return run_info(parse({"model"}, flags_with({})));
    if (command == "tokenize") return run_tokenize(parse({"tokenizer", "text"}, flags_with({"no-bos", "ids"})));
    if (command == "generate")
      return run_generate(parse(
          {"model", "run", "tokenizer", "prompt", "max-tokens", "temperature", "top-p", "seed", "device", "dtype"},
          flags_with({})));
    if (command == "eval")
      return run_eval(
          parse({"model", "run", "tokenizer", "text", "seq-len", "batch", "device", "dtype"}, flags_with({})));
    if (command == "quantize") return run_quantize(parse(kQuantizeOptions, flags_with(kQuantizeFlags)));
    if (command == "plan") return run_plan(parse(kQuantizeOptions, flags_with(kQuantizeFlags)));
    if (command == "export")
      return run_export(parse({"run", "out", "format", "dtype"}, flags_with({"force", "formats"})));
    if (command == "worker") {
      parse({}, {});  // takes no options
      return tessera::cli::run_worker();
    }
    if (command == "convert") return run_convert(parse({"model", "tokenizer", "out", "dtype"}, flags_with({"force"})));
    std::cerr << "error: unknown command \"" << command << "\" (see tessera --help)\n";
    return 2;
  } catch (const tessera::Cancelled&) {
    std::cerr << "cancelled\n";
    return 130;
  } catch (const std::exception& e) {
    std::cerr << "error: " << tessera::runtime::error_message(e) << "\n";
    return 1;
  }
}
