// tessera_bench_decoder_block: times one LLaMA decoder block forward (tessera::model::
// decoder_block_forward) on synthetic seeded weights and, in the same run, a plain matmul of the same
// FLOPs (the "floor"). Default: a LLaMA-2-7B-shaped block in bf16 on CUDA at batch 4 x 2048 tokens;
// on a machine without CUDA, a tiny fp32 block on the CPU.
//
//   tessera_bench_decoder_block [--device cuda|cpu] [--dtype bf16|fp16|fp32] [--batch B] [--seq T]
//                               [--hidden D] [--ffn F] [--heads H] [--kv-heads KV] [--iters N]
//                               [--warmup W] [--outliers K] [--json FILE]
//
// Before timing, the block output is checked against the same block computed in higher precision
// (fp32 for bf16/fp16 runs, fp64 for fp32 runs) on the same device, from the same (rounded) weights
// and input: relative Frobenius error, must be < 2e-2. Exit status: 0 ok, 1 error, 2 usage,
// 3 accuracy check failed (the timings are still printed and written).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "model/llama_model.h"
#include "runtime/torch_runtime.h"

namespace {

using tessera::model::DecoderBlockWeights;
using tessera::model::LlamaConfig;

struct Options {
  std::string device;  // "" = cuda if available, else cpu
  std::string dtype;   // "" = bf16 on cuda, fp32 on cpu
  std::int64_t batch = -1, seq = -1, hidden = -1, ffn = -1, heads = -1, kv_heads = -1;
  int iters = -1, warmup = 3, outliers = 8;
  double outlier_scale = 50.0;
  std::string json_path;
};

const char* kUsage =
    "usage: tessera_bench_decoder_block [--device cuda|cpu] [--dtype bf16|fp16|fp32] [--batch B]\n"
    "       [--seq T] [--hidden D] [--ffn F] [--heads H] [--kv-heads KV] [--iters N] [--warmup W]\n"
    "       [--outliers K] [--outlier-scale S] [--json FILE]\n"
    "defaults: CUDA: bf16, LLaMA-2-7B block (4096/11008/32/32), batch 4 x 2048, 20 iterations;\n"
    "          CPU: fp32, hidden 256, ffn 688, 4/4 heads, batch 2 x 128, 3 iterations\n";

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::cerr << "error: " << a << " needs a value (or is unknown)\n" << kUsage;
      return false;
    }
    const std::string v = argv[++i];
    auto to_int = [&](std::int64_t& out) {
      try {
        std::size_t used = 0;
        out = std::stoll(v, &used);
        if (used != v.size() || out <= 0) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        throw std::runtime_error(a + " needs a positive integer, got \"" + v + "\"");
      }
    };
    std::int64_t n = 0;
    if (a == "--device")
      o.device = v;
    else if (a == "--dtype")
      o.dtype = v;
    else if (a == "--batch")
      to_int(o.batch);
    else if (a == "--seq")
      to_int(o.seq);
    else if (a == "--hidden")
      to_int(o.hidden);
    else if (a == "--ffn")
      to_int(o.ffn);
    else if (a == "--heads")
      to_int(o.heads);
    else if (a == "--kv-heads")
      to_int(o.kv_heads);
    else if (a == "--iters") {
      to_int(n);
      o.iters = static_cast<int>(n);
    } else if (a == "--warmup") {
      to_int(n);
      o.warmup = static_cast<int>(n);
    } else if (a == "--outliers") {
      to_int(n);
      o.outliers = static_cast<int>(n);
    } else if (a == "--outlier-scale")
      o.outlier_scale = std::stod(v);
    else if (a == "--json")
      o.json_path = v;
    else {
      std::cerr << "error: unknown option " << a << "\n" << kUsage;
      return false;
    }
  }
  return true;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Runs fn() warmup times, then iters times, each timed alone between device synchronisations.
std::vector<double> time_ms(const torch::Device& device, int warmup, int iters, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  tessera::runtime::synchronize(device);
  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(iters));
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    tessera::runtime::synchronize(device);
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return ms;
}

DecoderBlockWeights make_weights(const LlamaConfig& c, torch::Device device) {
  // fp32 master weights: randn * 0.02 for the linears, 1 + 0.02 * randn for the norms.
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const auto q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
  DecoderBlockWeights w;
  w.input_norm = 1.0 + 0.02 * torch::randn({c.hidden_size}, opts);
  w.post_attention_norm = 1.0 + 0.02 * torch::randn({c.hidden_size}, opts);
  w.q_proj = torch::randn({q_out, c.hidden_size}, opts) * 0.02;
  w.k_proj = torch::randn({kv_out, c.hidden_size}, opts) * 0.02;
  w.v_proj = torch::randn({kv_out, c.hidden_size}, opts) * 0.02;
  w.o_proj = torch::randn({c.hidden_size, q_out}, opts) * 0.02;
  w.gate_proj = torch::randn({c.intermediate_size, c.hidden_size}, opts) * 0.02;
  w.up_proj = torch::randn({c.intermediate_size, c.hidden_size}, opts) * 0.02;
  w.down_proj = torch::randn({c.hidden_size, c.intermediate_size}, opts) * 0.02;
  return w;
}

DecoderBlockWeights cast_weights(const DecoderBlockWeights& w, torch::ScalarType dtype) {
  DecoderBlockWeights r = w;
  for (auto* t : r.all_tensors())
    if (t->defined()) *t = t->to(dtype).contiguous();
  return r;
}

double weight_bytes(DecoderBlockWeights& w) {
  double b = 0;
  for (auto* t : w.all_tensors())
    if (t->defined()) b += static_cast<double>(t->numel()) * static_cast<double>(t->element_size());
  return b;
}

std::string label(torch::ScalarType t) {
  return t == torch::kFloat64 ? std::string("fp64") : tessera::runtime::dtype_label(t);
}

double rel_fro(const torch::Tensor& a, const torch::Tensor& ref) {
  auto r = ref.to(torch::kFloat64);
  auto d = a.to(torch::kFloat64) - r;
  return (d.norm().item<double>()) / std::max(r.norm().item<double>(), 1e-300);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (!parse_args(argc, argv, o)) return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }

  try {
    tessera::runtime::configure_threads();
    const bool cuda_available = torch::cuda::is_available();
    if (o.device.empty()) o.device = cuda_available ? "cuda" : "cpu";
    const torch::Device device = tessera::runtime::parse_device(o.device);  // throws if unusable
    const bool on_cuda = device.is_cuda();
    if (o.dtype.empty()) o.dtype = on_cuda ? "bf16" : "fp32";
    const torch::ScalarType dtype = tessera::runtime::parse_dtype(o.dtype);
    // Shape defaults: the LLaMA-2-7B block on CUDA, a tiny block on the CPU.
    auto pick = [](std::int64_t v, std::int64_t big, std::int64_t small, bool cuda) {
      return v > 0 ? v : (cuda ? big : small);
    };
    const std::int64_t B = pick(o.batch, 4, 2, on_cuda), T = pick(o.seq, 2048, 128, on_cuda);
    const std::int64_t D = pick(o.hidden, 4096, 256, on_cuda), F = pick(o.ffn, 11008, 688, on_cuda);
    const std::int64_t H = pick(o.heads, 32, 4, on_cuda);
    const std::int64_t KV = o.kv_heads > 0 ? o.kv_heads : H;
    const int iters = o.iters > 0 ? o.iters : (on_cuda ? 20 : 3);
    if (D % H != 0 || H % KV != 0 || (D / H) % 2 != 0) {
      std::cerr << "error: need hidden % heads == 0, heads % kv-heads == 0 and an even head_dim\n";
      return 2;
    }

    LlamaConfig cfg;
    cfg.hidden_size = D;
    cfg.intermediate_size = F;
    cfg.num_layers = 1;
    cfg.num_heads = H;
    cfg.num_kv_heads = KV;
    cfg.head_dim = D / H;
    cfg.vocab_size = 32000;
    cfg.max_position_embeddings = std::max<std::int64_t>(T, 4096);
    cfg.rms_norm_eps = 1e-5;
    cfg.rope_theta = 10000.0;
    const std::int64_t hd = cfg.head_dim;

    std::printf("tessera_bench_decoder_block: libtorch %s, device %s, dtype %s, CUDA %s\n", TORCH_VERSION,
                device.str().c_str(), tessera::runtime::dtype_label(dtype).c_str(),
                cuda_available ? "available" : "not available");
    std::printf(
        "block: hidden %lld, ffn %lld, heads %lld, kv heads %lld, head_dim %lld; input %lld x %lld tokens; "
        "%d outlier channels x %.0f\n",
        (long long)D, (long long)F, (long long)H, (long long)KV, (long long)hd, (long long)B, (long long)T, o.outliers,
        o.outlier_scale);
    std::fflush(stdout);

    torch::NoGradGuard no_grad;
    torch::manual_seed(0);

    // ---- inputs and weights (seeded), rounded to the run dtype once --------------------------
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    auto master = make_weights(cfg, device);
    auto x32 = torch::randn({B, T, D}, f32);
    // LLaMA-like activation outliers: a few hidden channels carry much larger values.
    const std::int64_t k_out = std::min<std::int64_t>(o.outliers, D);
    auto outlier_channels =
        torch::randperm(D, torch::TensorOptions().dtype(torch::kLong).device(device)).narrow(0, 0, k_out);
    if (k_out > 0) {
      auto scale = torch::ones({D}, f32);
      scale.index_fill_(0, outlier_channels, o.outlier_scale);
      x32 = x32 * scale;
    }
    auto w = cast_weights(master, dtype);
    auto x = x32.to(dtype);
    master = DecoderBlockWeights{};  // free the fp32 masters (the reference recasts w)
    x32 = torch::Tensor();
    const auto rope = tessera::model::make_rope_tables(cfg, T, device, dtype);

    // ---- accuracy: run dtype vs. higher precision from the same rounded weights and input ----
    const torch::ScalarType ref_dtype = dtype == torch::kFloat32 ? torch::kFloat64 : torch::kFloat32;
    double err_out = 0, err_delta = 0;
    {
      auto y = tessera::model::decoder_block_forward(cfg, w, x, rope);
      auto w_ref = cast_weights(w, ref_dtype);
      auto x_ref = x.to(ref_dtype);
      const auto rope_ref = tessera::model::make_rope_tables(cfg, T, device, ref_dtype);
      auto y_ref = tessera::model::decoder_block_forward(cfg, w_ref, x_ref, rope_ref);
      err_out = rel_fro(y, y_ref);
      // The residual passes x through unchanged; the block's own contribution is the harder part.
      err_delta = rel_fro(y.to(ref_dtype) - x_ref, y_ref - x_ref);
      const bool finite = torch::isfinite(y).all().item<bool>();
      std::printf(
          "accuracy vs %s: rel. Frobenius error of the output %.3e (info: of the block delta y - x\n"
          "  %.3e, which includes rounding y to the run dtype next to the large outlier residuals)%s\n",
          label(ref_dtype).c_str(), err_out, err_delta, finite ? "" : "  NON-FINITE VALUES");
      if (!finite) err_out = std::numeric_limits<double>::infinity();
    }
    tessera::runtime::synchronize(device);
    const bool accuracy_ok = err_out < 2e-2;
    std::printf("accuracy check (< 2e-2): %s\n", accuracy_ok ? "PASS" : "FAIL");
    std::fflush(stdout);

    // ---- FLOPs ------------------------------------------------------------------------------
    const double tokens = static_cast<double>(B * T);
    const double q_out = static_cast<double>(H * hd), kv_out = static_cast<double>(KV * hd);
    const double d = static_cast<double>(D), ffn = static_cast<double>(F);
    const double linear_flops = 2.0 * tokens * (d * q_out + 2.0 * d * kv_out + q_out * d + 3.0 * d * ffn);
    // Q K^T and P V, each 2*B*H*T*T*hd when dense; causal: only the lower triangle (half) counts.
    const double attn_dense =
        4.0 * static_cast<double>(B * H) * static_cast<double>(T) * static_cast<double>(T) * static_cast<double>(hd);
    const double attn_causal = attn_dense / 2.0;
    const double block_flops = linear_flops + attn_causal;

    // ---- block forward timing -------------------------------------------------------------------
    tessera::runtime::reset_peak_gpu_memory(device);
    const auto block_ms = time_ms(device, o.warmup, iters, [&] {
      auto y = tessera::model::decoder_block_forward(cfg, w, x, rope);
      (void)y;
    });
    const double peak_gib = tessera::runtime::peak_gpu_memory_gib(device);
    const double block_med = median(block_ms);
    const double block_mean = std::accumulate(block_ms.begin(), block_ms.end(), 0.0) / block_ms.size();
    const double block_tflops = block_flops / (block_med * 1e-3) / 1e12;
    const double tokens_per_s = tokens / (block_med * 1e-3);

    // ---- matmul floor: [B*T, D] x [D, N] with 2*B*T*D*N ~= block FLOPs --------------------------
    std::int64_t N = static_cast<std::int64_t>(std::llround(block_flops / (2.0 * tokens * d)));
    N = std::max<std::int64_t>(64, (N + 63) / 64 * 64);  // a multiple of 64, as real layers are
    const double mm_flops = 2.0 * tokens * d * static_cast<double>(N);
    auto opts = torch::TensorOptions().dtype(dtype).device(device);
    auto a = torch::randn({B * T, D}, opts);
    auto bm = torch::randn({D, N}, opts) * 0.02;
    const auto mm_ms = time_ms(device, o.warmup, iters, [&] {
      auto c = torch::matmul(a, bm);
      (void)c;
    });
    a = torch::Tensor();
    bm = torch::Tensor();
    const double mm_med = median(mm_ms);
    const double mm_tflops = mm_flops / (mm_med * 1e-3) / 1e12;
    const double floor_ms = mm_med * block_flops / mm_flops;  // the matmul rate applied to the block
    const double ratio = block_med / floor_ms;

    auto w_copy = w;
    const double wbytes = weight_bytes(w_copy);

    // ---- report ---------------------------------------------------------------------------------
    std::printf(
        "\nFLOPs per forward: linears %.4g, attention %.4g (causal: lower triangle only, half of the\n"
        "dense T x T = %.4g), total %.4g\n",
        linear_flops, attn_causal, attn_dense, block_flops);
    std::printf("block forward: median %.3f ms (mean %.3f, min %.3f, max %.3f over %d; %d warm-up)\n", block_med,
                block_mean, *std::min_element(block_ms.begin(), block_ms.end()),
                *std::max_element(block_ms.begin(), block_ms.end()), iters, o.warmup);
    std::printf("matmul floor: [%lld x %lld] x [%lld x %lld] %s, median %.3f ms, %.1f TFLOP/s\n", (long long)(B * T),
                (long long)D, (long long)D, (long long)N, tessera::runtime::dtype_label(dtype).c_str(), mm_med,
                mm_tflops);
    std::printf("\n| metric | value |\n|---|---|\n");
    std::printf("| device / dtype | %s / %s |\n", device.str().c_str(), tessera::runtime::dtype_label(dtype).c_str());
    std::printf("| shape | B %lld x T %lld, d %lld, ffn %lld, heads %lld/%lld |\n", (long long)B, (long long)T,
                (long long)D, (long long)F, (long long)H, (long long)KV);
    std::printf("| block forward ms (median) | %.3f |\n", block_med);
    std::printf("| tokens/s | %.4g |\n", tokens_per_s);
    std::printf("| block TFLOP/s (causal count) | %.2f |\n", block_tflops);
    std::printf("| matmul TFLOP/s (same run) | %.2f |\n", mm_tflops);
    std::printf("| matmul floor ms for block FLOPs | %.3f |\n", floor_ms);
    std::printf("| block / floor | %.2fx |\n", ratio);
    std::printf("| peak GPU memory GiB (block loop) | %.3f%s |\n", peak_gib, on_cuda ? "" : " (CPU: n/a)");
    std::printf("| block weights GiB | %.3f |\n", wbytes / (1024.0 * 1024.0 * 1024.0));
    std::printf("| rel. error vs %s (output / delta) | %.3e / %.3e |\n", label(ref_dtype).c_str(), err_out, err_delta);
    std::fflush(stdout);

    if (!o.json_path.empty()) {
      nlohmann::json j = {{"bench", "decoder_block_forward"},
                          {"libtorch", TORCH_VERSION},
                          {"device", device.str()},
                          {"dtype", tessera::runtime::dtype_label(dtype)},
                          {"batch", B},
                          {"seq", T},
                          {"hidden", D},
                          {"ffn", F},
                          {"heads", H},
                          {"kv_heads", KV},
                          {"head_dim", hd},
                          {"outlier_channels", k_out},
                          {"outlier_scale", o.outlier_scale},
                          {"iters", iters},
                          {"warmup", o.warmup},
                          {"block_ms_median", block_med},
                          {"block_ms_mean", block_mean},
                          {"block_ms_all", block_ms},
                          {"tokens_per_s", tokens_per_s},
                          {"flops_linear", linear_flops},
                          {"flops_attention_causal", attn_causal},
                          {"flops_attention_dense", attn_dense},
                          {"flops_block", block_flops},
                          {"flops_note", "attention counted causally: lower triangle only (half of dense T x T)"},
                          {"block_tflops", block_tflops},
                          {"matmul_m", B * T},
                          {"matmul_k", D},
                          {"matmul_n", N},
                          {"matmul_flops", mm_flops},
                          {"matmul_ms_median", mm_med},
                          {"matmul_tflops", mm_tflops},
                          {"floor_ms", floor_ms},
                          {"block_over_floor", ratio},
                          {"peak_gpu_gib", peak_gib},
                          {"weights_gib", wbytes / (1024.0 * 1024.0 * 1024.0)},
                          {"reference_dtype", label(ref_dtype)},
                          {"rel_error_output", err_out},
                          {"rel_error_delta", err_delta},
                          {"accuracy_ok", accuracy_ok}};
      std::ofstream f(o.json_path);
      if (!f) {
        std::cerr << "error: cannot write " << o.json_path << "\n";
        return 1;
      }
      f << j.dump(2) << "\n";
      std::printf("wrote %s\n", o.json_path.c_str());
    }
    if (!accuracy_ok) {
      std::fprintf(stderr, "ACCURACY CHECK FAILED: rel. error %.3e >= 2e-2\n", err_out);
      return 3;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
