#include "api/layer_detail.h"

#include "model/model_loader.h"
#include "model/quantized_block.h"
#include "pipeline/quantization_run.h"
#include "pipeline/run_config.h"
#include "quant/group_quantizer.h"
#include "rundir/run_directory.h"
#include "util/error.h"

namespace tessera::api {

namespace {
template <typename T>
std::vector<T> to_vector(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}
}  // namespace

LayerDetail layer_detail(const std::string& run_dir, std::int64_t block, const std::string& layer) {
  rundir::RunDirectory dir(run_dir);
  const auto config = pipeline::read_run_manifest(run_dir, /*require_finished=*/false).config;
  if (!dir.has_block(block))
    throw Error("block " + std::to_string(block) + " of " + run_dir + " is not finished (no " + dir.block_path(block) +
                ")");
  const model::LinearKind* kind = nullptr;
  for (const auto& k : model::kAllLinears)
    if (layer == model::linear_name(k)) kind = &k;
  if (!kind)
    throw Error("unknown layer \"" + layer +
                "\" (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj)");

  torch::NoGradGuard no_grad;
  const auto qblock = model::QuantizedBlock::load(dir.block_path(block), config.weight);
  const auto& q = qblock.linears.at(*kind);
  if (!q.quantized())
    throw Error(layer + " of block " + std::to_string(block) +
                " is not quantized: the run's GGUF target keeps it in F16 (" +
                quant::linear_grid(config.weight, q.in_features()).reason + ")");
  // The checkpoint's weight, for the plain-RTN reference: only this block is read.
  const torch::Tensor w = model::load_block_weights(config.model, block).linear(*kind).to(torch::kFloat32);
  const auto rtn = quant::quantize_rtn(w, q.spec, layer);

  LayerDetail d;
  d.block = block;
  d.layer = layer;
  d.method = config.method;
  d.bits = q.spec.bits;
  d.rows = q.out_features();
  d.cols = q.in_features();
  d.group_size = q.spec.effective_group(d.cols);
  d.groups = q.spec.groups(d.cols);
  const auto delta = q.codes.to(torch::kInt64) - rtn.codes.to(torch::kInt64);
  const std::int64_t lo = delta.min().item<std::int64_t>(), hi = delta.max().item<std::int64_t>();
  d.code_change_min = lo;
  d.code_change_counts = to_vector<std::int64_t>(torch::bincount((delta - lo).flatten(), {}, hi - lo + 1));
  d.changed_fraction = delta.ne(0).to(torch::kFloat64).mean().item<double>();
  d.scale_ratio = to_vector<double>((q.scale / rtn.scale.clamp_min(1e-30)).to(torch::kFloat64));
  d.code_counts =
      to_vector<std::int64_t>(torch::bincount(q.codes.to(torch::kInt64).flatten(), {}, std::int64_t{1} << d.bits));
  const auto dst = qblock.method_state.find("tesseraq.dst." + layer);
  if (dst != qblock.method_state.end()) d.dst_factors = to_vector<double>(dst->second.to(torch::kFloat64));
  return d;
}

}  // namespace tessera::api
