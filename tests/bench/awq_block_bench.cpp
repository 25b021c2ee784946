// tessera_bench_awq_block: time of AWQ (scale search on the four subsets + LLMC asymmetric clip
// search + RTN) for one LLaMA-2-7B-shaped decoder block with synthetic seeded weights and
// 128 x 512 calibration tokens (with a few large-magnitude input channels, as in real LLaMA
// activations), and, in the same run, plain RTN of the same block as the baseline.
//
//   tessera_bench_awq_block [--device cuda|cpu] [--samples N] [--seq T] [--hidden D] [--ffn F]
//                           [--heads H] [--kv-heads KV] [--wbits B] [--group G] [--json FILE]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "methods/awq_method.h"
#include "methods/rtn_method.h"
#include "runtime/torch_runtime.h"

using namespace tessera;

int main(int argc, char** argv) {
  std::string device_name = torch::cuda::is_available() ? "cuda" : "cpu", json_path;
  const bool cuda = device_name == "cuda";
  std::int64_t samples = cuda ? 128 : 8, seq = cuda ? 512 : 64, hidden = cuda ? 4096 : 256, ffn = cuda ? 11008 : 688;
  std::int64_t heads = cuda ? 32 : 4, kv_heads = -1, wbits = 4, group = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--device")
      device_name = v;
    else if (a == "--samples")
      samples = std::stoll(v);
    else if (a == "--seq")
      seq = std::stoll(v);
    else if (a == "--hidden")
      hidden = std::stoll(v);
    else if (a == "--ffn")
      ffn = std::stoll(v);
    else if (a == "--heads")
      heads = std::stoll(v);
    else if (a == "--kv-heads")
      kv_heads = std::stoll(v);
    else if (a == "--wbits")
      wbits = std::stoll(v);
    else if (a == "--group")
      group = std::stoll(v);
    else if (a == "--json")
      json_path = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (kv_heads < 0) kv_heads = heads;
  runtime::configure_threads();
  const auto device = runtime::parse_device(device_name);
  torch::manual_seed(0);

  model::LlamaConfig c;
  c.hidden_size = hidden;
  c.intermediate_size = ffn;
  c.num_layers = 1;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = 32000;
  c.max_position_embeddings = seq;
  const auto opts = torch::TensorOptions().device(device).dtype(torch::kFloat32);
  auto r = [&](std::vector<std::int64_t> s) { return torch::randn(s, opts) * 0.02; };
  model::DecoderBlockWeights w;
  w.input_norm = torch::ones({hidden}, opts);
  w.post_attention_norm = torch::ones({hidden}, opts);
  w.q_proj = r({heads * c.head_dim, hidden});
  w.k_proj = r({kv_heads * c.head_dim, hidden});
  w.v_proj = r({kv_heads * c.head_dim, hidden});
  w.o_proj = r({hidden, heads * c.head_dim});
  w.gate_proj = r({ffn, hidden});
  w.up_proj = r({ffn, hidden});
  w.down_proj = r({hidden, ffn});
  auto x = torch::randn({samples, seq, hidden}, opts);
  x.index_put_({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(0, 8)},
               x.index({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(0, 8)}) * 50.0);

  pipeline::RunConfig run;
  run.model = "synthetic";
  run.calib = "synthetic";
  run.weight.bits = static_cast<int>(wbits);
  run.weight.group_size = group;
  run.batch_size = 8;
  pipeline::BlockContext ctx;
  ctx.config = &c;
  ctx.run = &run;
  ctx.rope = model::make_rope_tables(c, seq, device, torch::kFloat32);
  ctx.inputs_fp = x;
  ctx.inputs_quant = x;
  ctx.device = device;

  auto timed = [&](pipeline::BlockMethod& m) {
    runtime::synchronize(device);
    runtime::reset_peak_gpu_memory(device);
    const auto t0 = std::chrono::steady_clock::now();
    auto q = m.quantize_block(w, ctx);
    runtime::synchronize(device);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::make_pair(s, runtime::peak_gpu_memory_gib(device));
  };
  methods::RtnMethod rtn;
  methods::AwqMethod awq;
  timed(rtn);  // warm-up: kernels, allocator
  const auto [rtn_s, rtn_mem] = timed(rtn);
  const auto [awq_s, awq_mem] = timed(awq);
  std::printf(
      "AWQ block benchmark: %s, hidden %lld, ffn %lld, heads %lld/%lld, W%lld g%lld, calibration %lld x %lld tokens\n",
      device.str().c_str(), (long long)hidden, (long long)ffn, (long long)heads, (long long)kv_heads, (long long)wbits,
      (long long)group, (long long)samples, (long long)seq);
  std::printf("| method | seconds per block | peak GPU GiB |\n|---|---|---|\n");
  std::printf("| RTN (baseline) | %.3f | %.2f |\n| AWQ (20-point alpha grid, 10-ratio clip) | %.3f | %.2f |\n", rtn_s,
              rtn_mem, awq_s, awq_mem);
  std::printf("AWQ for 32 such blocks (LLaMA-2-7B): %.1f s\n", awq_s * 32);
  if (!json_path.empty()) {
    std::ofstream(json_path) << nlohmann::json{{"device", device.str()}, {"rtn_seconds", rtn_s},
                                               {"awq_seconds", awq_s},   {"awq_peak_gib", awq_mem},
                                               {"samples", samples},     {"seq", seq},
                                               {"hidden", hidden},       {"ffn", ffn}}
                                    .dump(2);
  }
  return 0;
}
