#pragma once
// Conversions between safetensors views and torch tensors.
#include <torch/torch.h>

#include "io/safetensors.h"

namespace tessera::formats {

torch::ScalarType to_torch_dtype(io::DType dtype, const std::string& context);
io::DType to_io_dtype(torch::ScalarType dtype);
torch::Tensor tensor_from_view(const io::TensorView& view);  // a copy, owned by torch
// A float32 copy of an F32, F16 or BF16 view, converted straight from the file's bytes (no
// intermediate copy in the stored dtype, which the CPU block cache would keep).
torch::Tensor float32_tensor_from_view(const io::TensorView& view);
void add_tensor(io::SafetensorsWriter& writer, const std::string& name, const torch::Tensor& t);

}  // namespace tessera::formats
