#include "formats/tensor_bytes.h"

#include "util/error.h"

namespace tessera::formats {

torch::ScalarType to_torch_dtype(io::DType dtype, const std::string& context) {
  switch (dtype) {
    case io::DType::F32:
      return torch::kFloat32;
    case io::DType::F16:
      return torch::kFloat16;
    case io::DType::BF16:
      return torch::kBFloat16;
    case io::DType::F64:
      return torch::kFloat64;
    case io::DType::I64:
      return torch::kInt64;
    case io::DType::I32:
      return torch::kInt32;
    case io::DType::I16:
      return torch::kInt16;
    case io::DType::I8:
      return torch::kInt8;
    case io::DType::U8:
      return torch::kUInt8;
    case io::DType::BOOL:
      return torch::kBool;
  }
  throw Error(context + ": unsupported dtype");
}

io::DType to_io_dtype(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return io::DType::F32;
    case torch::kFloat16:
      return io::DType::F16;
    case torch::kBFloat16:
      return io::DType::BF16;
    case torch::kFloat64:
      return io::DType::F64;
    case torch::kInt64:
      return io::DType::I64;
    case torch::kInt32:
      return io::DType::I32;
    case torch::kInt16:
      return io::DType::I16;
    case torch::kInt8:
      return io::DType::I8;
    case torch::kUInt8:
      return io::DType::U8;
    case torch::kBool:
      return io::DType::BOOL;
    default:
      break;
  }
  throw Error(std::string("cannot store torch dtype ") + c10::toString(dtype) + " in safetensors");
}

torch::Tensor tensor_from_view(const io::TensorView& view) {
  auto dtype = to_torch_dtype(view.dtype, view.name);
  if (view.numel() == 0) return torch::empty(view.shape, dtype);
  return torch::from_blob(const_cast<std::uint8_t*>(view.data), view.shape, dtype).clone();
}

torch::Tensor float32_tensor_from_view(const io::TensorView& view) {
  const auto dtype = to_torch_dtype(view.dtype, view.name);
  if (dtype == torch::kFloat32 || view.numel() == 0) return tensor_from_view(view).to(torch::kFloat32);
  return torch::from_blob(const_cast<std::uint8_t*>(view.data), view.shape, dtype).to(torch::kFloat32);
}

void add_tensor(io::SafetensorsWriter& writer, const std::string& name, const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU).contiguous();
  writer.add(name, to_io_dtype(c.scalar_type()), c.sizes().vec(), c.data_ptr(),
             static_cast<std::size_t>(c.numel()) * c.element_size());
}

}  // namespace tessera::formats
