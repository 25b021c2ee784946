#pragma once
// A batch of calibration samples gathered onto the compute device from wherever the run keeps
// them (the GPU, or pinned host memory for sets that do not fit).
#include <torch/torch.h>

#include <vector>

namespace tessera::pipeline {

// store[idx[0]], store[idx[1]], ... stacked on `device`. From host memory each sample is copied
// on its own, straight out of the (pinned) store and without blocking: index_select would first
// gather the batch into pageable host memory, which took 55 ms of a 100 ms TesseraQ step for
// 4 x 2048 x 4096 bf16 samples on the H100 (tessera_bench_tesseraq_step).
torch::Tensor gather_samples(const torch::Tensor& store, const std::vector<std::int64_t>& idx, torch::Device device);

}  // namespace tessera::pipeline
