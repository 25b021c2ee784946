// Hugging Face tokenizer.json (text/hf_tokenizer.h): the JSON (deep nesting included), the BPE
// model, merges, added tokens, pre-tokenizer and post-processor; then encoding and decoding a
// short text with it.
#include "fuzz_input.h"
#include "text/hf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = tessera_fuzz::write_input(data, size, "-tokenizer.json");
  tessera_fuzz::expect_clean([&] {
    const tessera::text::HfTokenizer t(path);
    const auto ids = t.encode("Once upon a time, 3 dogs\n\tran: \xc3\xa9t\xc3\xa9!", true, false);
    (void)t.decode(ids);
  });
  return 0;
}
