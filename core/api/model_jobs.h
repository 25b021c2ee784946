#pragma once
// The jobs that the CLI and the GUI run, behind a header with no libtorch types, so that front-end
// code compiles without the (slow) torch headers. Every function throws tessera::Error with a
// message fit for the user, and tessera::Cancelled when `stop` is triggered.
#include <cstdint>
#include <functional>
#include <string>

#include "model/llama_config.h"
#include "util/stop_token.h"

namespace tessera::api {

struct ModelSummary {
  std::string path;
  std::string format;  // "Hugging Face safetensors" or "llama2.c"
  model::LlamaConfig config;
  std::int64_t parameters = 0;
  std::string tokenizer_path;  // the tokenizer found beside the model, "" if none
};

ModelSummary describe_model(const std::string& model_path);  // reads no weights

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
};

struct EvalProgress {
  std::string stage;  // "loading", "tokenizing", "evaluating"
  std::int64_t windows_done = 0, windows_total = 0;
  double running_perplexity = 0;
};

EvalReport evaluate_perplexity(const EvalRequest& request,
                               const std::function<void(const EvalProgress&)>& progress = {},
                               const StopToken& stop = StopToken());

struct GenerateRequest {
  std::string model_path, tokenizer_path, prompt;
  std::int64_t max_tokens = 256;
  double temperature = 0.0, top_p = 1.0;
  std::uint64_t seed = 42;
  std::string device = "cpu", dtype = "fp32";
};

std::string generate(const GenerateRequest& request,
                     const std::function<void(const std::string&)>& on_text = {},
                     const StopToken& stop = StopToken());

struct TokenCount {
  std::int64_t tokens = 0;
  std::string tokenizer_kind;
  std::int64_t vocab_size = 0;
};
TokenCount count_tokens(const std::string& tokenizer_path, const std::string& text_path, bool add_bos);

// Any supported checkpoint -> a Hugging Face folder; copies the tokenizer file in beside it.
void convert_to_hf(const std::string& model_path, const std::string& tokenizer_path,
                   const std::string& out_folder, const std::string& dtype, bool replace_existing);

// Sets libtorch's thread count to the cores minus `reserved_cores` (at least 1); call once at
// program start. The GUI reserves one core so that its event loop is never starved by the worker.
void initialize_runtime(int reserved_cores = 0);

}  // namespace tessera::api
