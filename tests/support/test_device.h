#pragma once
// Whether CUDA tests should run: where TESSERA_TEST_DEVICE=cuda is set (the GPU machine, so that a
// missing device fails instead of skipping) or libtorch sees a CUDA device.
#include <torch/torch.h>

#include <cstdlib>
#include <string>

namespace tessera_test {

inline bool cuda_wanted() {
  const char* d = std::getenv("TESSERA_TEST_DEVICE");
  return (d != nullptr && std::string(d) == "cuda") || torch::cuda::is_available();
}

}  // namespace tessera_test
