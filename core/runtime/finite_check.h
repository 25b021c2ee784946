#pragma once
// Whether a tensor holds only finite values, checked in slices: torch::isfinite(t).all() makes
// temporaries as large as t (|t| in t's dtype and three bool tensors), which the CPU block cache
// (runtime/cpu_block_cache.h) then keeps for the rest of the process. Checking a 32000 x 4096
// embedding that way left 0.9 GiB behind at load.
#include <torch/torch.h>

namespace tessera::runtime {

bool all_finite(const torch::Tensor& t);

}  // namespace tessera::runtime
