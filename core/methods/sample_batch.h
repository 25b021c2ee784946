#pragma once
// Batches of calibration samples gathered onto the compute device from wherever the run keeps
// them (the GPU, or pinned host memory for sets that do not fit).
#include <torch/torch.h>

#include <array>
#include <memory>
#include <vector>

namespace tessera::methods {

// store[idx[0]], store[idx[1]], ... stacked on `device`. From host memory each sample is copied
// on its own, straight out of the (pinned) store and without blocking: index_select would first
// gather the batch into pageable host memory, which took 55 ms of a 100 ms TesseraQ step for
// 4 x 2048 x 4096 bf16 samples on the H100 (tessera_bench_tesseraq_step).
torch::Tensor gather_samples(const torch::Tensor& store, const std::vector<std::int64_t>& idx, torch::Device device);

// Gathers the next batch while the current one computes. From pinned host stores onto a CUDA
// device the copies run on a side stream into the other of two buffer sets, and take() makes the
// current stream wait for them; otherwise prefetch() only remembers the indices and take()
// gathers. A batch returned by take() stays valid until the second prefetch() after it.
class SamplePrefetcher {
 public:
  SamplePrefetcher(std::vector<torch::Tensor> stores, torch::Device device);
  ~SamplePrefetcher();
  SamplePrefetcher(const SamplePrefetcher&) = delete;
  SamplePrefetcher& operator=(const SamplePrefetcher&) = delete;

  void prefetch(const std::vector<std::int64_t>& idx);
  std::vector<torch::Tensor> take();                  // one batch per store, in the stores' order
  bool overlaps() const { return side_ != nullptr; }  // copies run beside the computation

 private:
  struct SideStream;
  std::vector<torch::Tensor> stores_;
  torch::Device device_;
  std::vector<std::int64_t> pending_idx_;
  std::unique_ptr<SideStream> side_;
  std::array<std::vector<torch::Tensor>, 2> buffers_;
  int pending_slot_ = -1, next_slot_ = 0;
};

}  // namespace tessera::methods
