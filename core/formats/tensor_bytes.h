#pragma once
// Conversions between safetensors views and torch tensors.
#include <torch/torch.h>

#include "io/safetensors.h"

namespace tessera::formats {

torch::ScalarType to_torch_dtype(io::DType dtype, const std::string& context);
io::DType to_io_dtype(torch::ScalarType dtype);
torch::Tensor tensor_from_view(const io::TensorView& view);  // a copy, owned by torch
void add_tensor(io::SafetensorsWriter& writer, const std::string& name, const torch::Tensor& t);

}  // namespace tessera::formats
