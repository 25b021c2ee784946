#pragma once
// The jobs that the CLI and the GUI run, behind a header with no libtorch types, so that front-end
// code compiles without the (slow) torch headers. Every function throws tessera::Error with a
// message fit for the user, and tessera::Cancelled when `stop` is triggered.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "api/job_types.h"
#include "util/stop_token.h"

namespace tessera::api {

ModelSummary describe_model(const std::string& model_path);  // reads no weights

EvalReport evaluate_perplexity(const EvalRequest& request,
                               const std::function<void(const EvalProgress&)>& progress = {},
                               const StopToken& stop = StopToken());

struct GenerateRequest {
  std::string model_path, tokenizer_path, prompt;
  std::string run_dir;  // a finished run instead of model_path: its quantized weights and tokenizer
  std::int64_t max_tokens = 256;
  double temperature = 0.0, top_p = 1.0;
  std::uint64_t seed = 42;
  std::string device = "cpu", dtype = "fp32";
};

std::string generate(const GenerateRequest& request, const std::function<void(const std::string&)>& on_text = {},
                     const StopToken& stop = StopToken());

struct TokenCount {
  std::int64_t tokens = 0;
  std::vector<std::int32_t> ids;
  std::string tokenizer_kind;
  std::int64_t vocab_size = 0;
};
TokenCount count_tokens(const std::string& tokenizer_path, const std::string& text_path, bool add_bos);

// Any supported checkpoint -> a Hugging Face folder with the tokenizer file copied in, or, when
// `out` ends in .gguf, one llama GGUF file with the tokenizer embedded. Returns what was written.
std::string convert_model(const std::string& model_path, const std::string& tokenizer_path, const std::string& out,
                          const std::string& dtype, bool replace_existing);

// Sets libtorch's thread count to the machine's cores (TESSERA_THREADS overrides it: the workbench
// starts its local workers with one core fewer, for its event loop); call once at program start.
void initialize_runtime();

}  // namespace tessera::api
