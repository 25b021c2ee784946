#include "methods/sample_batch.h"

#include "util/error.h"

#ifdef TESSERA_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace tessera::methods {

torch::Tensor gather_samples(const torch::Tensor& store, const std::vector<std::int64_t>& idx, torch::Device device) {
  if (store.device() == device)
    return store.index_select(0, torch::tensor(idx, torch::TensorOptions().dtype(torch::kInt64)).to(device));
  std::vector<torch::Tensor> parts;
  parts.reserve(idx.size());
  for (const auto i : idx) parts.push_back(store[i].to(device, /*non_blocking=*/store.is_pinned()));
  return torch::stack(parts);
}

#ifdef TESSERA_WITH_CUDA
namespace {
void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("sample prefetch: ") + what + ": " + cudaGetErrorString(e));
}
}  // namespace

// The copy stream and, per buffer set, an event for "copied" and one for "no longer read".
struct SamplePrefetcher::SideStream {
  explicit SideStream(torch::Device device) : stream(c10::cuda::getStreamFromPool(false, device.index())) {
    for (auto* e : {&copied[0], &copied[1], &released[0], &released[1]})
      cuda_check(cudaEventCreateWithFlags(e, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~SideStream() {
    for (auto* e : {&copied[0], &copied[1], &released[0], &released[1]}) cudaEventDestroy(*e);
  }
  c10::cuda::CUDAStream stream;
  cudaEvent_t copied[2]{}, released[2]{};
};
#else
struct SamplePrefetcher::SideStream {};
#endif

SamplePrefetcher::SamplePrefetcher(std::vector<torch::Tensor> stores, torch::Device device)
    : stores_(std::move(stores)), device_(device) {
#ifdef TESSERA_WITH_CUDA
  bool host_pinned = device.is_cuda();
  for (const auto& s : stores_) host_pinned = host_pinned && !s.is_cuda() && s.is_pinned();
  if (host_pinned) side_ = std::make_unique<SideStream>(device);
#endif
}

SamplePrefetcher::~SamplePrefetcher() {
#ifdef TESSERA_WITH_CUDA
  // Copies still in flight write into buffers_; let them finish before the buffers go.
  if (side_) cudaStreamSynchronize(side_->stream.stream());
#endif
}

void SamplePrefetcher::prefetch(const std::vector<std::int64_t>& idx) {
  pending_idx_ = idx;
#ifdef TESSERA_WITH_CUDA
  if (!side_) return;
  const int slot = next_slot_;
  next_slot_ ^= 1;
  auto& buffers = buffers_[static_cast<std::size_t>(slot)];
  const auto batch = static_cast<std::int64_t>(idx.size());
  if (buffers.empty() || buffers[0].size(0) != batch) {
    buffers.clear();
    for (const auto& s : stores_) {
      auto shape = s.sizes().vec();
      shape[0] = batch;
      buffers.push_back(torch::empty(shape, s.options().device(device_).pinned_memory(false)));
    }
  }
  // The set was last read by work queued on the compute stream before now.
  const auto compute = c10::cuda::getCurrentCUDAStream(device_.index());
  cuda_check(cudaEventRecord(side_->released[slot], compute.stream()), "cudaEventRecord");
  cuda_check(cudaStreamWaitEvent(side_->stream.stream(), side_->released[slot], 0), "cudaStreamWaitEvent");
  {
    c10::cuda::CUDAStreamGuard on_side(side_->stream);
    for (std::size_t s = 0; s < stores_.size(); ++s)
      for (std::int64_t i = 0; i < batch; ++i) buffers[s][i].copy_(stores_[s][idx[static_cast<std::size_t>(i)]], true);
  }
  cuda_check(cudaEventRecord(side_->copied[slot], side_->stream.stream()), "cudaEventRecord");
  pending_slot_ = slot;
#endif
}

std::vector<torch::Tensor> SamplePrefetcher::take() {
  if (pending_idx_.empty()) throw Error("SamplePrefetcher::take without prefetch");
  std::vector<torch::Tensor> out;
#ifdef TESSERA_WITH_CUDA
  if (side_) {
    const auto compute = c10::cuda::getCurrentCUDAStream(device_.index());
    cuda_check(cudaStreamWaitEvent(compute.stream(), side_->copied[pending_slot_], 0), "cudaStreamWaitEvent");
    out = buffers_[static_cast<std::size_t>(pending_slot_)];
    pending_idx_.clear();
    return out;
  }
#endif
  for (const auto& s : stores_) out.push_back(gather_samples(s, pending_idx_, device_));
  pending_idx_.clear();
  return out;
}

}  // namespace tessera::methods
