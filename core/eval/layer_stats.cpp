#include "eval/layer_stats.h"

#include <map>

#include "quant/group_quantizer.h"

namespace tessera::eval {

using model::LinearKind;

std::vector<LayerStats> compute_layer_stats(const model::LlamaConfig& config, const model::QuantizedBlock& block,
                                            std::int64_t block_index, const torch::Tensor& inputs,
                                            const model::RopeTables& rope, torch::Device device,
                                            std::int64_t batch_size) {
  torch::NoGradGuard no_grad;
  const auto& ref = block.float_reference;
  std::map<LinearKind, torch::Tensor> deq;
  for (const auto& [kind, q] : block.linears) deq[kind] = q.dequantize().to(device);
  // Each layer's inputs, from the float reference block run on the quantized chain.
  std::map<LinearKind, double> sq_err;
  std::map<LinearKind, std::int64_t> count;
  model::LinearInputObserver observer = [&](LinearKind kind, const torch::Tensor& x) {
    auto w = ref.linear(kind).to(device, torch::kFloat32);
    auto diff = at::linear(x.to(torch::kFloat32), w) - at::linear(x.to(torch::kFloat32), deq[kind]);
    sq_err[kind] += diff.pow(2).sum().item<double>();
    count[kind] += diff.numel();
  };
  model::DecoderBlockWeights on_device = ref;
  for (auto* t : on_device.all_tensors())
    if (t->defined()) *t = t->to(device, torch::kFloat32);
  for (std::int64_t i = 0; i < inputs.size(0); i += batch_size) {
    auto x = inputs.narrow(0, i, std::min(batch_size, inputs.size(0) - i)).to(device, torch::kFloat32);
    model::decoder_block_forward(config, on_device, x, rope, &observer);
  }
  std::vector<LayerStats> out;
  for (const auto& [kind, q] : block.linears) {
    LayerStats s;
    s.block = block_index;
    s.layer = model::linear_name(kind);
    auto w = on_device.linear(kind);
    s.rel_weight_error = ((w - deq[kind]).norm() / w.norm().clamp_min(1e-30)).item<double>();
    s.output_mse = count[kind] ? sq_err[kind] / static_cast<double>(count[kind]) : 0.0;
    if (q.quantized()) {  // q.spec: the Linear's own grid; an unquantized (F16) Linear has no codes to flip
      auto rtn = quant::quantize_rtn(w, q.spec, s.layer);
      // count_nonzero counts the bool comparison where it is; its mean as float64, or sum(),
      // would first copy it to 8 bytes per weight (344 MiB for a 7B FFN Linear, which the CPU
      // block cache then keeps).
      const auto flipped =
          torch::count_nonzero(torch::ne(rtn.codes.to(device), q.codes.to(device))).item<std::int64_t>();
      s.flip_ratio = static_cast<double>(flipped) / static_cast<double>(q.codes.numel());
    }
    const auto dst = block.method_state.find("tesseraq.dst." + s.layer);
    if (dst != block.method_state.end()) {
      const auto f = dst->second.to(torch::kFloat64);
      s.dst_min = f.min().item<double>();
      s.dst_max = f.max().item<double>();
      s.dst_std = f.numel() > 1 ? f.std().item<double>() : 0.0;
    }
    out.push_back(s);
  }
  return out;
}

double block_output_loss(const model::LlamaConfig& config, const model::DecoderBlockWeights& weights,
                         const torch::Tensor& inputs, const torch::Tensor& targets, const model::RopeTables& rope,
                         torch::Device device, std::int64_t batch_size, int activation_bits) {
  torch::NoGradGuard no_grad;
  model::BlockForwardOptions options;
  options.activation_bits = activation_bits;
  double sum = 0;
  std::int64_t tokens = 0;
  for (std::int64_t i = 0; i < inputs.size(0); i += batch_size) {
    const auto n = std::min(batch_size, inputs.size(0) - i);
    auto y = model::decoder_block_forward(config, weights, inputs.narrow(0, i, n).to(device, torch::kFloat32), rope,
                                          options);
    auto diff = y - targets.narrow(0, i, n).to(device, torch::kFloat32);
    sum += diff.pow(2).sum().item<double>();
    tokens += n * inputs.size(1);
  }
  return sum / static_cast<double>(tokens);
}

}  // namespace tessera::eval
