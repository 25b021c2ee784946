#include "runtime/finite_check.h"

namespace tessera::runtime {

namespace {
// Elements per slice: the temporaries of one slice stay below the block cache's 1 MiB threshold,
// so they come from and go back to libtorch's own allocator.
constexpr std::int64_t kSlice = std::int64_t{1} << 17;
}  // namespace

bool all_finite(const torch::Tensor& t) {
  if (!t.is_floating_point()) return true;
  const auto flat = t.detach().reshape({-1});
  for (std::int64_t at = 0; at < flat.numel(); at += kSlice)
    if (!torch::isfinite(flat.slice(0, at, std::min(at + kSlice, flat.numel()))).all().item<bool>()) return false;
  return true;
}

}  // namespace tessera::runtime
