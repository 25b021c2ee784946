#include "model/fused_rms_norm.h"

#ifdef TESSERA_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "kernels/rms_norm_kernels.h"
#endif

namespace tessera::model {

#ifdef TESSERA_CUDA_KERNELS
namespace {

std::optional<kernels::Dtype> kernel_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return kernels::Dtype::F32;
    case torch::kBFloat16:
      return kernels::Dtype::BF16;
    case torch::kHalf:
      return kernels::Dtype::F16;
    default:
      return std::nullopt;
  }
}

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

class FusedRmsNorm : public torch::autograd::Function<FusedRmsNorm> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    const auto xc = x.contiguous(), wc = weight.contiguous();
    const auto cols = x.size(-1), rows = cols > 0 ? x.numel() / cols : 0;
    auto y = torch::empty_like(xc);
    auto rstd = torch::empty({rows}, x.options().dtype(torch::kFloat32));
    kernels::rms_norm_forward(*kernel_dtype(x.scalar_type()), xc.data_ptr(), wc.data_ptr(), y.data_ptr(),
                              rstd.data_ptr<float>(), rows, cols, static_cast<float>(eps), current_stream());
    ctx->save_for_backward({xc, wc, rstd});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto& rstd = saved[2];
    const auto g = grads[0].contiguous();
    const auto cols = x.size(-1), rows = cols > 0 ? x.numel() / cols : 0;
    torch::Tensor grad_x, grad_weight;
    if (ctx->needs_input_grad(0)) {
      grad_x = torch::empty_like(x);
      kernels::rms_norm_backward(*kernel_dtype(x.scalar_type()), x.data_ptr(), weight.data_ptr(),
                                 rstd.data_ptr<float>(), g.data_ptr(), grad_x.data_ptr(), rows, cols, current_stream());
    }
    if (ctx->needs_input_grad(1)) {  // y = weight * n: dL/dweight = sum over rows of dL/dy * n
      const auto n = (x.view({rows, cols}).to(torch::kFloat32) * rstd.unsqueeze(1)).to(x.scalar_type());
      grad_weight = (g.view({rows, cols}).to(torch::kFloat32) * n.to(torch::kFloat32)).sum(0).to(weight.scalar_type());
    }
    return {grad_x, grad_weight, torch::Tensor()};
  }
};

}  // namespace
#endif

std::optional<torch::Tensor> fused_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
#ifdef TESSERA_CUDA_KERNELS
  if (x.is_cuda() && weight.is_cuda() && x.scalar_type() == weight.scalar_type() && weight.dim() == 1 && x.dim() >= 1 &&
      x.size(-1) == weight.size(0) && kernel_dtype(x.scalar_type()))
    return FusedRmsNorm::apply(x, weight, eps);
#else
  (void)x;
  (void)weight;
  (void)eps;
#endif
  return std::nullopt;
}

}  // namespace tessera::model
