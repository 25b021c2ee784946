#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

#include "kernels/rms_norm_kernels.h"

namespace tessera::kernels {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// Sum over the block's threads; every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float partial[kThreads / 32];
  __shared__ float total;
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? partial[lane] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0) total = v;
  }
  __syncthreads();
  return total;
}

// One block per row.
template <typename T>
__global__ void rms_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ weight, T* __restrict__ y,
                                        float* __restrict__ rstd, std::int64_t cols, float eps) {
  const std::int64_t row = blockIdx.x;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  float sq = 0.f;
  for (std::int64_t i = threadIdx.x; i < cols; i += kThreads) {
    const float v = to_float(xr[i]);
    sq += v * v;
  }
  const float r = rsqrtf(block_sum(sq) / static_cast<float>(cols) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (std::int64_t i = threadIdx.x; i < cols; i += kThreads) {
    const float n = to_float(from_float<T>(to_float(xr[i]) * r));
    yr[i] = from_float<T>(to_float(weight[i]) * n);
  }
}

// n = x r with r = (mean(x^2) + eps)^(-1/2): dL/dx_i = r g_i - x_i r^3 sum_j(g_j x_j) / cols, where
// g = T(dL/dy * weight) is the gradient reaching n (rounded to T as the op path's product is).
template <typename T>
__global__ void rms_norm_backward_kernel(const T* __restrict__ x, const T* __restrict__ weight,
                                         const float* __restrict__ rstd, const T* __restrict__ grad_y,
                                         T* __restrict__ grad_x, std::int64_t cols) {
  const std::int64_t row = blockIdx.x;
  const T* xr = x + row * cols;
  const T* gr = grad_y + row * cols;
  T* out = grad_x + row * cols;
  float dot = 0.f;
  for (std::int64_t i = threadIdx.x; i < cols; i += kThreads) {
    const float g = to_float(from_float<T>(to_float(gr[i]) * to_float(weight[i])));
    dot += g * to_float(xr[i]);
  }
  const float r = rstd[row];
  const float c = block_sum(dot) * r * r * r / static_cast<float>(cols);
  for (std::int64_t i = threadIdx.x; i < cols; i += kThreads) {
    const float g = to_float(from_float<T>(to_float(gr[i]) * to_float(weight[i])));
    out[i] = from_float<T>(r * g - to_float(xr[i]) * c);
  }
}

void check_launch(const char* what) {
  const auto e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace

void rms_norm_forward(Dtype type, const void* x, const void* weight, void* y, float* rstd, std::int64_t rows,
                      std::int64_t cols, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  const dim3 grid(static_cast<unsigned>(rows));
  switch (type) {
    case Dtype::F32:
      rms_norm_forward_kernel<float><<<grid, kThreads, 0, stream>>>(
          static_cast<const float*>(x), static_cast<const float*>(weight), static_cast<float*>(y), rstd, cols, eps);
      break;
    case Dtype::BF16:
      rms_norm_forward_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(x), static_cast<const __nv_bfloat16*>(weight),
          static_cast<__nv_bfloat16*>(y), rstd, cols, eps);
      break;
    case Dtype::F16:
      rms_norm_forward_kernel<__half><<<grid, kThreads, 0, stream>>>(
          static_cast<const __half*>(x), static_cast<const __half*>(weight), static_cast<__half*>(y), rstd, cols, eps);
      break;
  }
  check_launch("rms_norm_forward");
}

void rms_norm_backward(Dtype type, const void* x, const void* weight, const float* rstd, const void* grad_y,
                       void* grad_x, std::int64_t rows, std::int64_t cols, cudaStream_t stream) {
  if (rows == 0) return;
  const dim3 grid(static_cast<unsigned>(rows));
  switch (type) {
    case Dtype::F32:
      rms_norm_backward_kernel<float>
          <<<grid, kThreads, 0, stream>>>(static_cast<const float*>(x), static_cast<const float*>(weight), rstd,
                                          static_cast<const float*>(grad_y), static_cast<float*>(grad_x), cols);
      break;
    case Dtype::BF16:
      rms_norm_backward_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(x), static_cast<const __nv_bfloat16*>(weight), rstd,
          static_cast<const __nv_bfloat16*>(grad_y), static_cast<__nv_bfloat16*>(grad_x), cols);
      break;
    case Dtype::F16:
      rms_norm_backward_kernel<__half>
          <<<grid, kThreads, 0, stream>>>(static_cast<const __half*>(x), static_cast<const __half*>(weight), rstd,
                                          static_cast<const __half*>(grad_y), static_cast<__half*>(grad_x), cols);
      break;
  }
  check_launch("rms_norm_backward");
}

}  // namespace tessera::kernels
