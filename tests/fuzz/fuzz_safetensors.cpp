// safetensors reader (io/safetensors.h): the 8-byte header length, the JSON header (dtypes,
// shapes, offsets), the data section against the file size, and the stored tensor digests.
#include "fuzz_input.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = tessera_fuzz::write_input(data, size, ".safetensors");
  tessera_fuzz::expect_clean([&] {
    const tessera::io::SafetensorsFile f(path);
    (void)tessera::io::verify_tensor_digests(f, "tessera.sha256");
  });
  return 0;
}
