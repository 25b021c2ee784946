// Writes stories260K widened to rows of 256 (tests/support/synthetic_model.h) into a folder, for
// the k-quant rows of tests/bench/gguf_target_table.sh:  tessera_write_wide_model OUT_DIR
#include <cstdio>

#include "synthetic_model.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const auto path = tessera_test::write_wide_stories260k(argv[1]);
  if (path.empty()) {
    std::fprintf(stderr, "%s\n", tessera_test::missing_message("models/stories260K/stories260K.bin").c_str());
    return 1;
  }
  std::printf("%s\n", path.c_str());
  return 0;
}
