// GGUF reader (formats/gguf_file.h): header, metadata of every type (nested arrays), tensor infos,
// offsets and sizes against the file, then every tensor's bytes and the SHA-256 over them.
#include "formats/gguf_file.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = tessera_fuzz::write_input(data, size, ".gguf");
  tessera_fuzz::expect_clean([&] {
    const tessera::formats::GgufFile f(path);
    (void)f.metadata().dump();
    for (const auto& t : f.tensors()) (void)f.tensor(t.name);
    (void)f.tensor_data_sha256();
  });
  return 0;
}
