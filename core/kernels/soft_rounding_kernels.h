#pragma once
// CUDA kernels of TesseraQ's step on one Linear in its compacted form (methods/tesseraq_linear.h):
// the soft weight the matmul reads, the gradients of the soft rounding variables and of the DST
// variables, and Adam on both. Only the soft elements are visited element by element; every other
// element is an integer code read once per pass. No weight-sized fp32 temporary exists.
//
// Plain pointers and no libtorch, so that nvcc compiles this quickly; the tensor-level wrapper is
// methods/tesseraq_linear.cpp. Built only when the libtorch found has CUDA (TESSERA_CUDA_KERNELS).
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/kernel_types.h"

namespace tessera::kernels {

enum class CodeType { I8, I16 };

// One Linear [rows, cols] with groups of `group` columns (the last one may be shorter).
struct SoftLayer {
  std::int64_t rows = 0, cols = 0, group = 0, groups = 0;
  float qmax = 0;
  int scale_bits = 0;  // s * delta rounded to fp16 values of this many significant bits (0: not rounded)
  // > 0: s * delta moved to GGUF k-quant scales d * k, k in 1..superblock_levels, per run of
  // superblock_groups groups of a row (quant::representable_scales); scale_bits is then 0.
  int superblock_levels = 0;
  std::int64_t superblock_groups = 0;
  CodeType code_type = CodeType::I8;
  // Hard elements: their final code (floor(W/s) + z + rounding, before the clamp to [0, qmax]);
  // soft elements: floor(W/s) + z, clamped to [-1, qmax] (outside it the clamp of the soft code
  // makes the value and the gradient the same).
  const void* codes = nullptr;
  const float* scale = nullptr;  // s, [rows, groups]
  const float* zero = nullptr;   // z, [rows, groups]
  float* v = nullptr;            // DST variables, [rows, groups]; delta = 2 rsig(v)
  float* step = nullptr;         // scratch [rows, groups]: s * delta (soft_weight_forward writes it)
  float* group_grad = nullptr;   // scratch [rows, groups]: sum over the group of dW * s * (q - z)
  // k-quants with mins only (superblock_levels > 0, asymmetric): scratch [rows, groups], the zero
  // point that goes with step, z * step moved onto the dmin * m lattice and divided by step
  // (quant::group_offsets); the forward pass uses it instead of z. nullptr otherwise.
  float* step_zero = nullptr;
  std::int64_t soft_count = 0;
  const std::int32_t* soft_index = nullptr;  // ascending flat positions of the soft elements
  float* soft_nu = nullptr;                  // their rounding variables
  // [rows * groups + 1]: the soft-list entries of group k are soft_group_start[k] .. [k + 1] - 1
  // (index_soft_groups writes it whenever the soft list changes; the backward passes read it).
  const std::int32_t* soft_group_start = nullptr;
};

// Writes layer.soft_group_start's content into `soft_group_start` from layer.soft_index.
void index_soft_groups(const SoftLayer& layer, std::int32_t* soft_group_start, cudaStream_t stream);

// Adam (torch.optim.Adam semantics: L2 weight decay added to the gradient, bias-corrected moments)
// for the method's two parameter groups. A step whose loss is not finite changes nothing, so the
// host never has to read the loss before the update.
struct AdamGroups {
  float lr_nu = 1e-3f, lr_v = 1e-3f, weight_decay_v = 0.f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float* nu_m = nullptr;  // [soft_count]
  float* nu_v = nullptr;
  float* v_m = nullptr;  // [rows, groups]
  float* v_v = nullptr;
  const float* coefficients = nullptr;  // adam_begin_step's output for this step
};

// W = s * delta * (clamp(code (+ rsig(nu) where soft), 0, qmax) - z) into `out` ([rows, cols],
// contiguous), and layer.step = s * delta (rounded per layer.scale_bits or superblock_levels) for
// the backward pass.
void soft_weight_forward(const SoftLayer& layer, Dtype out_type, void* out, cudaStream_t stream);

// From dL/dW: grad_nu [soft_count] and grad_v [rows, groups] (for tests; training uses the fused
// soft_weight_adam_step). Needs layer.step from soft_weight_forward with the same v.
void soft_weight_gradients(const SoftLayer& layer, Dtype grad_type, const void* grad_w, float* grad_nu, float* grad_v,
                           cudaStream_t stream);

// Once per step before the layers' updates: if *loss is finite, ++*step_count and coefficients =
// {1, 1 / (1 - beta1^t), 1 / sqrt(1 - beta2^t)}; otherwise coefficients[0] = 0 (skip).
void adam_begin_step(std::int64_t* step_count, const float* loss, float* coefficients, float beta1, float beta2,
                     cudaStream_t stream);

// The gradients of soft_weight_gradients and one Adam step on soft_nu and v, in two passes.
// Both need layer.soft_group_start.
void soft_weight_adam_step(const SoftLayer& layer, Dtype grad_type, const void* grad_w, const AdamGroups& adam,
                           cudaStream_t stream);

}  // namespace tessera::kernels
