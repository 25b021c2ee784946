#pragma once
// Fused RMSNorm for the block forward and backward on CUDA, with the arithmetic of the libtorch-op
// path (model/llama_model.cpp rms_norm, as Hugging Face's LlamaRMSNorm): per row
//   r = rsqrt(mean(x^2) + eps) in fp32,  n = T(x * r),  y = T(weight * n)
// where T is the activation type. The op path runs about 8 kernels forward and 12 backward over
// fp32 temporaries of the activation's size; these run one each.
//
// Plain pointers and no libtorch (nvcc compiles this quickly); the autograd wrapper is
// model/fused_rms_norm.cpp. Built only when the libtorch found has CUDA (TESSERA_CUDA_KERNELS).
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/kernel_types.h"

namespace tessera::kernels {

// x, y: [rows, cols] contiguous of `type`; weight: [cols] of `type`; rstd: [rows] fp32 (r above,
// for the backward pass).
void rms_norm_forward(Dtype type, const void* x, const void* weight, void* y, float* rstd, std::int64_t rows,
                      std::int64_t cols, float eps, cudaStream_t stream);

// dL/dx from dL/dy (both [rows, cols] of `type`) with the forward's rstd. The weight is taken as
// constant (TesseraQ trains no norm; the wrapper adds dL/dweight with libtorch ops when asked).
void rms_norm_backward(Dtype type, const void* x, const void* weight, const float* rstd, const void* grad_y,
                       void* grad_x, std::int64_t rows, std::int64_t cols, cudaStream_t stream);

}  // namespace tessera::kernels
