#include "pipeline/sample_batch.h"

namespace tessera::pipeline {

torch::Tensor gather_samples(const torch::Tensor& store, const std::vector<std::int64_t>& idx, torch::Device device) {
  if (store.device() == device)
    return store.index_select(0, torch::tensor(idx, torch::TensorOptions().dtype(torch::kInt64)).to(device));
  std::vector<torch::Tensor> parts;
  parts.reserve(idx.size());
  for (const auto i : idx) parts.push_back(store[i].to(device, /*non_blocking=*/store.is_pinned()));
  return torch::stack(parts);
}

}  // namespace tessera::pipeline
