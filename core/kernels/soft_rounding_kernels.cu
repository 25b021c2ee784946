// TesseraQ's soft weight, its gradients and Adam on the compacted soft list (soft_rounding_kernels.h).
//
// Per step and Linear, with n elements of which S are soft and G groups:
//   forward:  step = s * 2 rsig(v) (G); a dense pass codes -> W (reads 1 byte, writes the weight);
//             a pass over the soft list overwriting W at the soft positions.
//   backward: one warp per group: the dense sum of dW * s * (clamp(code) - z), then the group's run
//             of the soft list (positions ascend, so it is contiguous): the difference the soft
//             rounding makes to that sum, d(nu) and Adam on nu; then Adam on v (G). Fixed
//             summation order, no atomics: a run is bit-reproducible.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/soft_rounding_kernels.h"

namespace tessera::kernels {

namespace {

constexpr int kThreads = 256;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA kernel ") + what + ": " + cudaGetErrorString(e));
}

int blocks_for(std::int64_t work_items, int per_block = kThreads) {
  const auto b = (work_items + per_block - 1) / per_block;
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(b, 1 << 20)));
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float rsig(float x) { return fminf(fmaxf(1.2f * sigmoid(x) - 0.1f, 0.0f), 1.0f); }
// rsig'(x), passing the gradient at the clamp's ends as torch.clamp does.
__device__ __forceinline__ float rsig_grad(float x) {
  const float sg = sigmoid(x), pre = 1.2f * sg - 0.1f;
  return (pre >= 0.0f && pre <= 1.0f) ? 1.2f * sg * (1.0f - sg) : 0.0f;
}
__device__ __forceinline__ float clamp_code(float c, float qmax) { return fminf(fmaxf(c, 0.0f), qmax); }

// torch.optim.Adam's update of one variable (weight decay already in g); returns the new value.
__device__ __forceinline__ float adam_update(float x, float g, float* m, float* v2, float lr, const AdamGroups& adam) {
  const float mm = adam.beta1 * *m + (1.0f - adam.beta1) * g;
  const float vv = adam.beta2 * *v2 + (1.0f - adam.beta2) * g * g;
  *m = mm;
  *v2 = vv;
  return x - lr * adam.coefficients[1] * mm / (sqrtf(vv) * adam.coefficients[2] + adam.eps);
}

template <typename T, int N>
struct alignas(sizeof(T) * N <= 16 ? sizeof(T) * N : 16) Pack {
  T v[N];
};

// ---- forward ----

// x rounded to an fp16 value of at most `bits` significant bits, as quant::representable_scales:
// x = m 2^e, spacing 2^max(e - bits, -24); only rintf rounds (ties to even, as torch.round).
__device__ __forceinline__ float representable_scale(float x, int bits) {
  if (bits <= 0) return x;
  int e;
  frexpf(x, &e);
  const int k = max(e - bits, -24);
  return ldexpf(rintf(ldexpf(x, -k)), k);
}

__global__ void step_kernel(const float* scale, const float* v, float* step, std::int64_t n, int scale_bits) {
  for (std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    step[k] = representable_scale(scale[k] * 2.0f * rsig(v[k]), scale_bits);
}

// GGUF k-quant scales, as quant::representable_scales: per row and super-block of `per_block`
// groups, d = fp16(max x / levels) (at least 2^-24) and step = d * clamp(rint(x / d), 1, levels).
// With `step_zero` (k-quants with mins), the offsets z * step the same way, with dmin and m in
// 0..levels (quant::group_offsets), and step_zero = offset / step.
__global__ void superblock_step_kernel(const float* scale, const float* v, const float* zero, float* step,
                                       float* step_zero, std::int64_t n_blocks, int per_block, int levels) {
  const float tiny = ldexpf(1.0f, -24), n = static_cast<float>(levels);
  for (std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; b < n_blocks;
       b += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t first = b * per_block;
    float top = 0.0f;
    for (int g = 0; g < per_block; ++g) {
      const float x = scale[first + g] * 2.0f * rsig(v[first + g]);
      step[first + g] = x;
      top = fmaxf(top, x);
    }
    const float d = fmaxf(representable_scale(top / n, 11), tiny);
    for (int g = 0; g < per_block; ++g) step[first + g] = d * fminf(fmaxf(rintf(step[first + g] / d), 1.0f), n);
    if (!step_zero) continue;
    float top_offset = 0.0f;
    for (int g = 0; g < per_block; ++g) {
      const float o = fmaxf(zero[first + g] * step[first + g], 0.0f);
      step_zero[first + g] = o;
      top_offset = fmaxf(top_offset, o);
    }
    const float dmin = fmaxf(representable_scale(top_offset / n, 11), tiny);
    for (int g = 0; g < per_block; ++g)
      step_zero[first + g] = dmin * fminf(fmaxf(rintf(step_zero[first + g] / dmin), 0.0f), n) / step[first + g];
  }
}

// VEC consecutive elements per thread; VEC divides cols and group, so they share row and group.
template <typename Code, typename Out, int VEC>
__global__ void dense_weight_kernel(const Code* codes, const float* zero, const float* step, Out* out,
                                    std::int64_t packs, std::int64_t cols, std::int64_t group, std::int64_t groups,
                                    float qmax) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < packs;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t e = i * VEC, r = e / cols, c = e - r * cols, k = r * groups + c / group;
    const float z = zero[k], st = step[k];
    const auto in = reinterpret_cast<const Pack<Code, VEC>*>(codes)[i];
    Pack<Out, VEC> o;
#pragma unroll
    for (int j = 0; j < VEC; ++j) o.v[j] = from_float<Out>((clamp_code(static_cast<float>(in.v[j]), qmax) - z) * st);
    reinterpret_cast<Pack<Out, VEC>*>(out)[i] = o;
  }
}

template <typename Code, typename Out>
__global__ void soft_weight_kernel(const std::int32_t* index, const float* nu, const Code* codes, const float* zero,
                                   const float* step, Out* out, std::int64_t count, std::int64_t cols,
                                   std::int64_t group, std::int64_t groups, float qmax) {
  for (std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; j < count;
       j += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t p = index[j], r = p / cols, c = p - r * cols, k = r * groups + c / group;
    const float q = clamp_code(static_cast<float>(codes[p]) + rsig(nu[j]), qmax);
    out[p] = from_float<Out>((q - zero[k]) * step[k]);
  }
}

// ---- backward ----

// soft_group_start[k] = the first soft-list entry whose group is >= k, for k = 0 .. rows * groups
// (soft positions ascend, so each group's soft elements are one run of the list). One thread per
// entry writes the starts of the groups between its predecessor's group and its own.
__global__ void soft_group_start_kernel(const std::int32_t* index, std::int32_t* start, std::int64_t count,
                                        std::int64_t cols, std::int64_t group, std::int64_t groups,
                                        std::int64_t n_groups) {
  for (std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; j <= count;
       j += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    auto group_of = [&](std::int64_t i) {
      const std::int64_t p = index[i], r = p / cols;
      return r * groups + (p - r * cols) / group;
    };
    const std::int64_t first = j == 0 ? 0 : group_of(j - 1) + 1;
    const std::int64_t last = j == count ? n_groups : group_of(j);
    for (std::int64_t k = first; k <= last; ++k) start[k] = static_cast<std::int32_t>(j);
  }
}

// One warp per (row, group), in a fixed order so that runs are bit-reproducible (no atomics):
//   group_grad = s * sum over the group of dW * (clamp(code (+ rsig(nu) where soft), 0, qmax) - z),
// the dense elements at their code, then the group's run of the soft list, where the warp also
// computes d(nu) = dW * s * delta * rsig'(nu) (zero where the clamp is active) and, with ADAM,
// updates nu and its moments (the group sum reads nu before the update).
template <typename Code, typename Grad, int VEC, bool ADAM>
__global__ void group_backward_kernel(const Code* codes, const Grad* grad, const float* scale, const float* zero,
                                      const float* step, float* group_grad, const std::int32_t* soft_index,
                                      const std::int32_t* soft_group_start, float* nu, float* grad_nu, AdamGroups adam,
                                      std::int64_t rows, std::int64_t cols, std::int64_t group, std::int64_t groups,
                                      float qmax) {
  const int lane = threadIdx.x & 31;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * (blockDim.x / 32);
  for (std::int64_t w = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32; w < rows * groups;
       w += warps) {
    const std::int64_t r = w / groups, g = w - r * groups, c0 = g * group;
    const std::int64_t len = min(group, cols - c0);
    const float z = zero[w], st = step[w];
    float sum = 0.0f;
    for (std::int64_t c = lane * VEC; c < len; c += 32 * VEC) {
      const std::int64_t e = r * cols + c0 + c;
      const auto cd = *reinterpret_cast<const Pack<Code, VEC>*>(codes + e);
      const auto gd = *reinterpret_cast<const Pack<Grad, VEC>*>(grad + e);
#pragma unroll
      for (int j = 0; j < VEC; ++j) sum += to_float(gd.v[j]) * (clamp_code(static_cast<float>(cd.v[j]), qmax) - z);
    }
    if (soft_group_start != nullptr) {
      const bool update = ADAM && adam.coefficients[0] != 0.0f;
      for (std::int64_t j = soft_group_start[w] + lane; j < soft_group_start[w + 1]; j += 32) {
        const std::int64_t p = soft_index[j];
        const float gw = to_float(grad[p]), code = static_cast<float>(codes[p]), x = nu[j];
        const float t = code + rsig(x);
        sum += gw * (clamp_code(t, qmax) - clamp_code(code, qmax));
        const float d = (t >= 0.0f && t <= qmax) ? gw * st * rsig_grad(x) : 0.0f;
        if (!ADAM)
          grad_nu[j] = d;
        else if (update)
          nu[j] = adam_update(x, d, adam.nu_m + j, adam.nu_v + j, adam.lr_nu, adam);
      }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, off);
    if (lane == 0) group_grad[w] = scale[w] * sum;
  }
}

template <bool ADAM>
__global__ void dst_kernel(float* v, const float* group_grad, float* grad_v, AdamGroups adam, std::int64_t n) {
  for (std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float x = v[k];
    const float d = group_grad[k] * 2.0f * rsig_grad(x);
    if (ADAM) {
      if (adam.coefficients[0] == 0.0f) return;
      v[k] = adam_update(x, d + adam.weight_decay_v * x, adam.v_m + k, adam.v_v + k, adam.lr_v, adam);
    } else {
      grad_v[k] = d;
    }
  }
}

__global__ void adam_begin_kernel(std::int64_t* step_count, const float* loss, float* coefficients, float beta1,
                                  float beta2) {
  if (!isfinite(*loss)) {
    coefficients[0] = 0.0f;
    return;
  }
  const std::int64_t t = ++*step_count;
  coefficients[0] = 1.0f;
  coefficients[1] = static_cast<float>(1.0 / (1.0 - pow(static_cast<double>(beta1), static_cast<double>(t))));
  coefficients[2] = static_cast<float>(1.0 / sqrt(1.0 - pow(static_cast<double>(beta2), static_cast<double>(t))));
}

// ---- dispatch ----

template <typename F>
void with_code_type(CodeType t, F&& f) {
  if (t == CodeType::I8)
    f(std::int8_t{});
  else
    f(std::int16_t{});
}

template <typename F>
void with_dtype(Dtype t, F&& f) {
  switch (t) {
    case Dtype::F32:
      f(float{});
      break;
    case Dtype::BF16:
      f(__nv_bfloat16{});
      break;
    case Dtype::F16:
      f(__half{});
      break;
  }
}

bool vectorizable(const SoftLayer& l, int vec) { return l.cols % vec == 0 && l.group % vec == 0; }

}  // namespace

void soft_weight_forward(const SoftLayer& l, Dtype out_type, void* out, cudaStream_t stream) {
  const auto n_groups = l.rows * l.groups;
  if (l.superblock_levels > 0)
    superblock_step_kernel<<<blocks_for(n_groups / l.superblock_groups), kThreads, 0, stream>>>(
        l.scale, l.v, l.zero, l.step, l.step_zero, n_groups / l.superblock_groups,
        static_cast<int>(l.superblock_groups), l.superblock_levels);
  else
    step_kernel<<<blocks_for(n_groups), kThreads, 0, stream>>>(l.scale, l.v, l.step, n_groups, l.scale_bits);
  const float* zero = l.step_zero ? l.step_zero : l.zero;
  with_code_type(l.code_type, [&](auto code_tag) {
    using Code = decltype(code_tag);
    with_dtype(out_type, [&](auto out_tag) {
      using Out = decltype(out_tag);
      const auto* codes = static_cast<const Code*>(l.codes);
      auto* o = static_cast<Out*>(out);
      const auto n = l.rows * l.cols;
      if (vectorizable(l, 8))
        dense_weight_kernel<Code, Out, 8><<<blocks_for(n / 8), kThreads, 0, stream>>>(
            codes, zero, l.step, o, n / 8, l.cols, l.group, l.groups, l.qmax);
      else
        dense_weight_kernel<Code, Out, 1>
            <<<blocks_for(n), kThreads, 0, stream>>>(codes, zero, l.step, o, n, l.cols, l.group, l.groups, l.qmax);
      if (l.soft_count > 0)
        soft_weight_kernel<Code, Out><<<blocks_for(l.soft_count), kThreads, 0, stream>>>(
            l.soft_index, l.soft_nu, codes, zero, l.step, o, l.soft_count, l.cols, l.group, l.groups, l.qmax);
    });
  });
  check(cudaGetLastError(), "soft_weight_forward");
}

namespace {

template <bool ADAM>
void backward(const SoftLayer& l, Dtype grad_type, const void* grad_w, float* grad_nu, float* grad_v,
              const AdamGroups& adam, cudaStream_t stream) {
  const auto n_groups = l.rows * l.groups;
  const auto* starts = l.soft_count > 0 ? l.soft_group_start : nullptr;
  with_code_type(l.code_type, [&](auto code_tag) {
    using Code = decltype(code_tag);
    with_dtype(grad_type, [&](auto grad_tag) {
      using Grad = decltype(grad_tag);
      const auto* codes = static_cast<const Code*>(l.codes);
      const auto* g = static_cast<const Grad*>(grad_w);
      const int warp_blocks = blocks_for(n_groups, kThreads / 32);
      if (vectorizable(l, 4))
        group_backward_kernel<Code, Grad, 4, ADAM><<<warp_blocks, kThreads, 0, stream>>>(
            codes, g, l.scale, l.zero, l.step, l.group_grad, l.soft_index, starts, l.soft_nu, grad_nu, adam, l.rows,
            l.cols, l.group, l.groups, l.qmax);
      else
        group_backward_kernel<Code, Grad, 1, ADAM><<<warp_blocks, kThreads, 0, stream>>>(
            codes, g, l.scale, l.zero, l.step, l.group_grad, l.soft_index, starts, l.soft_nu, grad_nu, adam, l.rows,
            l.cols, l.group, l.groups, l.qmax);
    });
  });
  dst_kernel<ADAM><<<blocks_for(n_groups), kThreads, 0, stream>>>(l.v, l.group_grad, grad_v, adam, n_groups);
}

}  // namespace

void index_soft_groups(const SoftLayer& l, std::int32_t* soft_group_start, cudaStream_t stream) {
  soft_group_start_kernel<<<blocks_for(l.soft_count + 1), kThreads, 0, stream>>>(
      l.soft_index, soft_group_start, l.soft_count, l.cols, l.group, l.groups, l.rows * l.groups);
  check(cudaGetLastError(), "index_soft_groups");
}

void soft_weight_gradients(const SoftLayer& l, Dtype grad_type, const void* grad_w, float* grad_nu, float* grad_v,
                           cudaStream_t stream) {
  backward<false>(l, grad_type, grad_w, grad_nu, grad_v, AdamGroups{}, stream);
  check(cudaGetLastError(), "soft_weight_gradients");
}

void adam_begin_step(std::int64_t* step_count, const float* loss, float* coefficients, float beta1, float beta2,
                     cudaStream_t stream) {
  adam_begin_kernel<<<1, 1, 0, stream>>>(step_count, loss, coefficients, beta1, beta2);
  check(cudaGetLastError(), "adam_begin_step");
}

void soft_weight_adam_step(const SoftLayer& l, Dtype grad_type, const void* grad_w, const AdamGroups& adam,
                           cudaStream_t stream) {
  backward<true>(l, grad_type, grad_w, nullptr, nullptr, adam, stream);
  check(cudaGetLastError(), "soft_weight_adam_step");
}

}  // namespace tessera::kernels
