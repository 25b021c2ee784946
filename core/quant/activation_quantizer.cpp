#include "quant/activation_quantizer.h"

namespace tessera::quant {

torch::Tensor fake_quantize_per_token(const torch::Tensor& x, int bits) {
  const double qmax = std::pow(2.0, bits) - 1.0;
  auto xf = x.to(torch::kFloat32);
  auto lo = std::get<0>(xf.min(-1, true)), hi = std::get<0>(xf.max(-1, true));
  auto s = torch::clamp_min(hi - lo, 1e-5) / qmax;
  auto z = torch::clamp(-torch::round(lo / s), 0.0, qmax);
  auto q = (torch::clamp(torch::round(xf / s) + z, 0.0, qmax) - z) * s;
  // Straight-through: forward value q, gradient of the identity.
  return x + (q.to(x.scalar_type()) - x).detach();
}

}  // namespace tessera::quant
