// A run's run.json (pipeline/run_config.h): RunConfig::from_json_text and validate(), as resume
// and the worker protocol read it.
#include <string>

#include "fuzz_input.h"
#include "pipeline/run_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tessera_fuzz::expect_clean([&] {
    const auto c = tessera::pipeline::RunConfig::from_json_text(text, "run.json");
    c.validate();
    (void)c.identity_json();
  });
  return 0;
}
