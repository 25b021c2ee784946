// A model's config.json (model/llama_config.h): LlamaConfig::from_hf_json_text with its validation
// (sizes, heads, rope scaling), then the parameter count.
#include <string>

#include "fuzz_input.h"
#include "model/llama_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tessera_fuzz::expect_clean([&] {
    const auto c = tessera::model::LlamaConfig::from_hf_json_text(text, "config.json");
    (void)c.parameter_count();
    (void)c.to_hf_json_text();
  });
  return 0;
}
