#include "api/model_jobs.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>

#include "eval/perplexity.h"
#include "export/gguf_export.h"
#include "model/hf_checkpoint.h"
#include "model/model_loader.h"
#include "model/text_generator.h"
#include "pipeline/quantization_run.h"
#include "rundir/event_log.h"
#include "runtime/torch_runtime.h"
#include "text/text_file.h"
#include "text/tokenizer_loader.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace tessera::api {
namespace {

std::string resolve_tokenizer(const std::string& model_path, const std::string& tokenizer_path) {
  if (!tokenizer_path.empty()) return tokenizer_path;
  const std::string found = text::find_tokenizer_for_model(model_path);
  if (found.empty()) throw Error("no tokenizer found beside " + model_path + "; pass one with --tokenizer");
  return found;
}

// The model a job runs: a checkpoint, or a finished run's quantized weights (run_dir), with the
// tokenizer (the request's, else the run's, else the one beside the checkpoint) checked against it.
struct JobModel {
  std::optional<model::LlamaModel> model;
  std::string model_path, tokenizer_path;
  std::unique_ptr<text::Tokenizer> tokenizer;
};

JobModel load_job_model(const std::string& model_path, const std::string& run_dir, const std::string& tokenizer_path) {
  JobModel j;
  j.model_path = model_path;
  std::string tokenizer_request = tokenizer_path;
  if (!run_dir.empty()) {
    pipeline::RunConfig run;
    j.model.emplace(pipeline::load_quantized_model(run_dir, &run));
    j.model_path = run.model;
    if (tokenizer_request.empty()) tokenizer_request = run.tokenizer;
  } else {
    j.model.emplace(model::load_model(model_path));
  }
  j.tokenizer_path = resolve_tokenizer(j.model_path, tokenizer_request);
  j.tokenizer = text::load_tokenizer(j.tokenizer_path);
  text::check_tokenizer_matches_model(*j.tokenizer, j.model->config().vocab_size, j.model_path);
  return j;
}

std::string model_label(const EvalRequest& request, const std::string& model_path) {
  return request.run_dir.empty() ? model_path : "run " + request.run_dir;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void initialize_runtime() { runtime::configure_threads(); }

ModelSummary describe_model(const std::string& model_path) {
  ModelSummary s;
  s.path = model_path;
  s.format = model::checkpoint_format_name(model::detect_checkpoint_format(model_path));
  s.config = model::read_model_config(model_path);
  s.parameters = s.config.parameter_count();
  s.tokenizer_path = text::find_tokenizer_for_model(model_path);
  return s;
}

EvalReport evaluate_perplexity(const EvalRequest& request, const std::function<void(const EvalProgress&)>& progress,
                               const StopToken& stop) {
  auto report_stage = [&](const char* stage) {
    if (progress) progress({stage, 0, 0, 0});
  };
  const auto device = runtime::parse_device(request.device);
  const auto dtype = runtime::parse_dtype(request.dtype);
  const auto load_start = std::chrono::steady_clock::now();
  report_stage("loading");
  auto job = load_job_model(request.model_path, request.run_dir, request.tokenizer_path);
  auto& model = *job.model;
  const auto& model_path = job.model_path;
  const auto& tokenizer_path = job.tokenizer_path;
  auto& tokenizer = job.tokenizer;
  model.to(device, dtype);
  stop.throw_if_stopped();

  report_stage("tokenizing");
  const std::string text = text::read_text_file(request.text_path);
  const auto ids = tokenizer->encode(text, /*add_bos=*/true, /*add_eos=*/false);
  const double load_seconds = seconds_since(load_start);
  stop.throw_if_stopped();

  eval::PerplexityOptions options;
  options.seq_len = request.seq_len > 0 ? request.seq_len : eval::default_seq_len(model.config());
  options.batch_size = request.batch_size;
  logger()->info("evaluating {} on {} ({} tokens, windows of {}) on {} in {}", model_label(request, model_path),
                 request.text_path, ids.size(), options.seq_len, request.device, request.dtype);
  auto result = eval::evaluate_perplexity(
      model, ids, options,
      [&](std::int64_t done, std::int64_t total, double ppl) {
        if (progress) progress({"evaluating", done, total, ppl});
      },
      stop);

  EvalReport r;
  r.perplexity = result.perplexity;
  r.mean_loss = result.mean_loss;
  r.text_tokens = result.text_tokens;
  r.windows = result.windows;
  r.seq_len = result.seq_len;
  r.seconds = result.seconds;
  r.tokens_per_second = result.tokens_per_second;
  r.load_seconds = load_seconds;
  r.device = device.str();
  r.dtype = runtime::dtype_label(dtype);
  r.model_path = request.run_dir.empty() ? model_path : request.run_dir;
  r.tokenizer_path = tokenizer_path;
  r.text_path = request.text_path;
  r.newlines = text::kNewlineHandling;
  logger()->info("perplexity {:.4f} over {} windows of {} ({:.0f} tokens/s)", r.perplexity, r.windows, r.seq_len,
                 r.tokens_per_second);
  if (!request.run_dir.empty()) {
    // A run's evaluations belong to its history: the workbench replays them with its events.
    rundir::RunEvent e;
    e.kind = rundir::RunEvent::Kind::Evaluated;
    e.perplexity = r.perplexity;
    e.text_path = r.text_path;
    e.seconds = r.seconds;
    rundir::RunEventLog(rundir::RunDirectory(request.run_dir)).append(e);
  }
  return r;
}

std::string generate(const GenerateRequest& request, const std::function<void(const std::string&)>& on_text,
                     const StopToken& stop) {
  const auto device = runtime::parse_device(request.device);
  const auto dtype = runtime::parse_dtype(request.dtype);
  auto job = load_job_model(request.model_path, request.run_dir, request.tokenizer_path);
  auto& model = *job.model;
  auto& tokenizer = job.tokenizer;
  model.to(device, dtype);
  model::GenerateOptions options;
  options.max_tokens = request.max_tokens;
  options.temperature = request.temperature;
  options.top_p = request.top_p;
  options.seed = request.seed;
  return model::generate_text(model, *tokenizer, request.prompt, options, on_text, stop);
}

TokenCount count_tokens(const std::string& tokenizer_path, const std::string& text_path, bool add_bos) {
  auto tokenizer = text::load_tokenizer(tokenizer_path);
  auto ids = tokenizer->encode(text::read_text_file(text_path), add_bos, false);
  TokenCount count;
  count.tokens = static_cast<std::int64_t>(ids.size());
  count.ids = std::move(ids);
  count.tokenizer_kind = tokenizer->kind();
  count.vocab_size = tokenizer->vocab_size();
  return count;
}

std::string convert_model(const std::string& model_path, const std::string& tokenizer_path, const std::string& out,
                          const std::string& dtype, bool replace_existing) {
  auto model = model::load_model(model_path);
  std::string tokenizer = tokenizer_path.empty() ? text::find_tokenizer_for_model(model_path) : tokenizer_path;
  if (!tokenizer.empty()) {
    text::check_tokenizer_matches_model(*text::load_tokenizer(tokenizer), model.config().vocab_size, model_path);
  }
  if (std::filesystem::path(out).extension() == ".gguf") {
    const auto report = exporting::convert_model_to_gguf(model, tokenizer, out, dtype, replace_existing);
    return out + " (GGUF " + report.dtype + ", " + std::to_string(report.bytes) + " bytes; " + report.self_check + ")";
  }
  model::HfSaveOptions options;
  options.finish = [&](const std::string& tmp) {
    if (!tokenizer.empty()) text::copy_tokenizer_files(tokenizer, tmp);
  };
  model::save_hf_checkpoint(model, out, runtime::parse_dtype(dtype), replace_existing, options);
  logger()->info("wrote {} ({} layers, {}){}", out, model.config().num_layers, dtype,
                 tokenizer.empty() ? "" : " with tokenizer " + tokenizer);
  return out;
}

}  // namespace tessera::api
