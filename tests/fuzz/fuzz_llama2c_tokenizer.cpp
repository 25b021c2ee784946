// llama2.c tokenizer.bin (text/llama2c_tokenizer.h): max token length, then per token a score, a
// length and the bytes; then encoding and decoding a short text with it.
#include "fuzz_input.h"
#include "text/llama2c_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = tessera_fuzz::write_input(data, size, "-tok.bin");
  tessera_fuzz::expect_clean([&] {
    const tessera::text::Llama2cTokenizer t(path);
    const auto ids = t.encode("Once upon a time", true, false);
    (void)t.decode(ids);
  });
  return 0;
}
