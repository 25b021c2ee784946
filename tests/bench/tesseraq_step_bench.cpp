// tessera_bench_tesseraq_step: TesseraQ's PAR steps (arXiv 2410.19103) on one decoder block
// with synthetic seeded weights, LLaMA-2-7B-shaped by default, with the paper's settings: 512 x 2048
// calibration tokens (a few large-magnitude input channels, as in real LLaMA activations), batch 4,
// W2 g128, the paper20 schedule. The step is TesseraqBlockTrainer's and batches come through the
// run's SamplePrefetcher: exactly what a run executes. For the first variant every PAR iteration of
// the schedule is timed (--steps timed steps after --warmup, per iteration), since the step gets
// cheaper as variables harden; the other variants time the first iteration only. Reported: ms per
// step, tokens/s, achieved TFLOP/s (matmul FLOPs of forward + backward), the ratio to a bf16 matmul
// of the same FLOPs timed in the same run (the floor), peak GPU memory, the hardening time, and the
// projected time of the whole schedule at 250 steps per iteration. Then a synchronised phase
// profile of the first iteration.
//
// Variants: bf16 (matmuls in bf16, CUDA kernels: what runs use on CUDA), bf16-ops (bf16, the
// libtorch-op implementation of the same step), fp32 (fp32 matmuls, kernels). Calibration
// activations are kept in bf16 in pinned host memory (17.2 GB for both chains would not fit the
// memory target on the GPU); --store gpu keeps them on the GPU instead.
//
//   tessera_bench_tesseraq_step [--samples N] [--seq T] [--hidden D] [--ffn F] [--heads H]
//       [--kv-heads H] [--batch B] [--steps N] [--warmup N] [--wbits B] [--group G]
//       [--schedule paper20|LIST] [--iterations N] [--store host|gpu] [--variants LIST] [--json FILE]
//       [--profile-steps N]
// --profile-steps N brackets N steps of the first variant's first iteration (after its warm-up)
// with cudaProfilerStart/Stop, for `ncu --profile-from-start off` (installers/kernel-profile.sh).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>
#include <string>

#ifdef TESSERA_WITH_CUDA
#include <cuda_profiler_api.h>
#endif

#include "methods/sample_batch.h"
#include "methods/tesseraq_method.h"
#include "methods/tesseraq_settings.h"
#include "pipeline/run_config.h"
#include "runtime/torch_runtime.h"

using namespace tessera;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Variant {
  std::string name;
  torch::ScalarType dtype;
  bool kernels;
};

std::string device_name(const torch::Device& device) {
  if (!device.is_cuda()) return "cpu";
  for (const auto& d : runtime::cuda_devices())
    if (d.index == (device.has_index() ? device.index() : 0)) return d.name;
  return device.str();
}

}  // namespace

int main(int argc, char** argv) {
  const bool cuda = torch::cuda::is_available();
  std::int64_t samples = cuda ? 512 : 8, seq = cuda ? 2048 : 64, hidden = cuda ? 4096 : 256, ffn = cuda ? 11008 : 688;
  std::int64_t heads = cuda ? 32 : 4, kv_heads = 0, steps = cuda ? 20 : 3, warmup = cuda ? 3 : 1, wbits = 2,
               group = 128;
  std::int64_t batch = 4, iterations = 0, profile_steps = 0;
  std::string store = "host", variants_arg = cuda ? "bf16,bf16-ops" : "fp32", json_path, schedule = "paper20";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--samples")
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
    else if (a == "--batch")
      batch = std::stoll(v);
    else if (a == "--schedule")
      schedule = v;
    else if (a == "--iterations")
      iterations = std::stoll(v);
    else if (a == "--profile-steps")
      profile_steps = std::stoll(v);
    else if (a == "--steps")
      steps = std::stoll(v);
    else if (a == "--warmup")
      warmup = std::stoll(v);
    else if (a == "--wbits")
      wbits = std::stoll(v);
    else if (a == "--group")
      group = std::stoll(v);
    else if (a == "--store")
      store = v;
    else if (a == "--variants")
      variants_arg = v;
    else if (a == "--json")
      json_path = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  runtime::configure_threads();
  const torch::Device device = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;

  model::LlamaConfig c;
  c.hidden_size = hidden;
  c.intermediate_size = ffn;
  c.num_layers = 1;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads > 0 ? kv_heads : heads;
  c.head_dim = hidden / heads;
  c.vocab_size = 32000;
  c.max_position_embeddings = seq;
  const auto f32 = torch::TensorOptions().device(device).dtype(torch::kFloat32);
  auto r = [&](std::vector<std::int64_t> s) { return torch::randn(s, f32) * 0.02; };
  model::DecoderBlockWeights w;
  w.input_norm = torch::ones({hidden}, f32);
  w.post_attention_norm = torch::ones({hidden}, f32);
  w.q_proj = r({hidden, hidden});
  const auto kv_dim = c.num_kv_heads * c.head_dim;
  w.k_proj = r({kv_dim, hidden});
  w.v_proj = r({kv_dim, hidden});
  w.o_proj = r({hidden, hidden});
  w.gate_proj = r({ffn, hidden});
  w.up_proj = r({ffn, hidden});
  w.down_proj = r({hidden, ffn});
  const auto rope = model::make_rope_tables(c, seq, device, torch::kFloat32);

  // Calibration: inputs (8 outlier channels x50) and the FP block's outputs, bf16, generated per
  // batch on the device and stored where --store says.
  const auto t_data = Clock::now();
  const auto store_opts = torch::TensorOptions().dtype(torch::kBFloat16).device(store == "gpu" ? device : torch::kCPU);
  auto inputs = torch::empty({samples, seq, hidden}, store_opts);
  auto targets = torch::empty({samples, seq, hidden}, store_opts);
  if (store != "gpu" && cuda) {
    inputs = inputs.pin_memory();
    targets = targets.pin_memory();
  }
  for (std::int64_t i = 0; i < samples; i += batch) {
    const auto b = std::min(batch, samples - i);
    auto x = torch::randn({b, seq, hidden}, f32);
    x.narrow(2, 0, 8).mul_(50.0);
    auto y = model::decoder_block_forward(c, w, x, rope);
    inputs.narrow(0, i, b).copy_(x.to(torch::kBFloat16));
    targets.narrow(0, i, b).copy_(y.to(torch::kBFloat16));
  }
  runtime::synchronize(device);
  std::printf("calibration %lld x %lld tokens generated in %.1f s, stored in %s (bf16, %.2f GiB for both chains)\n",
              (long long)samples, (long long)seq, seconds_since(t_data),
              store == "gpu" ? "GPU memory" : (cuda ? "pinned host memory" : "host memory"),
              2.0 * samples * seq * hidden * 2 / (1024.0 * 1024 * 1024));

  // Matmul FLOPs of one step: forward 2 * tokens * (linear params) + attention (QK^T and PV,
  // 4 * B * T^2 * D, halved for the causal mask); backward twice the forward.
  const double tokens = static_cast<double>(batch * seq);
  const double linear_params = 2.0 * hidden * hidden + 2.0 * hidden * kv_dim + 3.0 * hidden * ffn;
  const double fwd_flops = 2.0 * tokens * linear_params + 2.0 * batch * double(seq) * seq * hidden;
  const double step_flops = 3.0 * fwd_flops;

  // The floor: a bf16 matmul [tokens x hidden] @ [hidden x ffn] repeated to the same FLOPs.
  double matmul_tflops = 0;
  if (cuda) {
    auto a = torch::randn({batch * seq, hidden}, f32.dtype(torch::kBFloat16));
    auto b = torch::randn({hidden, ffn}, f32.dtype(torch::kBFloat16));
    for (int i = 0; i < 5; ++i) torch::matmul(a, b);
    runtime::synchronize(device);
    const int reps = 50;
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) torch::matmul(a, b);
    runtime::synchronize(device);
    matmul_tflops = reps * 2.0 * tokens * hidden * ffn / seconds_since(t0) / 1e12;
  }
  const double floor_ms = matmul_tflops > 0 ? step_flops / (matmul_tflops * 1e12) * 1e3 : 0;
  std::printf(
      "block: hidden %lld, ffn %lld, heads %lld (kv %lld); W%lld g%lld; batch %lld x %lld tokens; %.2f TFLOP per "
      "step\n",
      (long long)hidden, (long long)ffn, (long long)heads, (long long)c.num_kv_heads, (long long)wbits,
      (long long)group, (long long)batch, (long long)seq, step_flops / 1e12);
  if (cuda) std::printf("device: %s\n", device_name(device).c_str());
  std::printf("floor: bf16 matmul %.1f TFLOP/s -> %.2f ms for one step's FLOPs\n\n", matmul_tflops, floor_ms);

  std::vector<Variant> variants;
  std::stringstream list(variants_arg);
  for (std::string v; std::getline(list, v, ',');) {
    if (v == "bf16")
      variants.push_back({v, torch::kBFloat16, true});
    else if (v == "bf16-ops")
      variants.push_back({v, torch::kBFloat16, false});
    else if (v == "fp32")
      variants.push_back({v, torch::kFloat32, true});
    else if (v == "fp32-ops")
      variants.push_back({v, torch::kFloat32, false});
    else {
      std::fprintf(stderr, "unknown variant %s\n", v.c_str());
      return 2;
    }
  }
  pipeline::RunConfig schedule_config;
  schedule_config.settings.set("tesseraq", "schedule", schedule);
  const auto thresholds = methods::par_thresholds(schedule_config);
  const auto timed_iterations = iterations > 0
                                    ? std::min<std::int64_t>(iterations, static_cast<std::int64_t>(thresholds.size()))
                                    : static_cast<std::int64_t>(thresholds.size());

  const quant::WeightQuantSpec spec{static_cast<int>(wbits), group, false};
  nlohmann::json results = nlohmann::json::array();
  std::map<std::string, double> profile;
  const double paper_steps = 250;
  for (const auto& variant : variants) {
    runtime::synchronize(device);
    runtime::reset_peak_gpu_memory(device);
    methods::TesseraqTrainerOptions options;
    options.compute_dtype = variant.dtype;
    options.use_kernels = variant.kernels;
    const auto t_init = Clock::now();
    methods::TesseraqBlockTrainer trainer(c, w, {}, spec, options, rope);
    runtime::synchronize(device);
    const double init_s = seconds_since(t_init);
    // Peaks by phase (set-up, each hardening, each iteration's steps), so that the table shows
    // which phase sets the block's peak; the overall peak is the largest of them.
    double overall_peak = runtime::peak_gpu_memory_gib(device);
    const double init_peak = overall_peak;
    std::mt19937_64 rng(42);
    std::vector<std::int64_t> perm(static_cast<std::size_t>(samples));
    auto batch_indices = [&] {
      std::iota(perm.begin(), perm.end(), 0);
      for (std::int64_t i = 0; i < batch; ++i)
        std::swap(perm[i], perm[std::uniform_int_distribution<std::int64_t>(i, samples - 1)(rng)]);
      return std::vector<std::int64_t>(perm.begin(), perm.begin() + batch);
    };
    methods::SamplePrefetcher batches({inputs, targets}, device);
    batches.prefetch(batch_indices());
    torch::AutoGradMode grad(true);
    auto one_step = [&] {
      const auto xy = batches.take();
      batches.prefetch(batch_indices());
      auto loss = trainer.loss(xy[0], xy[1]);
      trainer.update(loss);
      return loss;
    };
    const bool first = variant.name == variants.front().name;
    const auto n_iterations = first ? timed_iterations : 1;
    std::printf("\n%s (CUDA kernels: %s, copies beside the step: %s, trainer set up in %.2f s, set-up peak %.2f GiB)\n",
                variant.name.c_str(), trainer.runs_kernels() ? "yes" : "no", batches.overlaps() ? "yes" : "no", init_s,
                init_peak);
    std::printf(
        "| PAR iteration | soft | ms/step | tokens/s | TFLOP/s | step / floor | steps' peak GiB | hardening ms | "
        "hardening peak GiB | loss |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
    nlohmann::json per_iteration = nlohmann::json::array();
    double schedule_s = 0;
    for (std::int64_t it = 0; it < n_iterations; ++it) {
      const double t = thresholds[static_cast<std::size_t>(it)];
      runtime::synchronize(device);
      runtime::reset_peak_gpu_memory(device);
      const auto t_harden = Clock::now();
      trainer.begin_iteration(t);
      runtime::synchronize(device);
      const double harden_ms = seconds_since(t_harden) * 1e3;
      const double harden_peak = runtime::peak_gpu_memory_gib(device);
      runtime::reset_peak_gpu_memory(device);
      for (std::int64_t i = 0; i < warmup; ++i) one_step();
      runtime::synchronize(device);
#ifdef TESSERA_WITH_CUDA
      if (first && it == 0 && profile_steps > 0 && cuda) {
        cudaProfilerStart();
        for (std::int64_t i = 0; i < profile_steps; ++i) one_step();
        runtime::synchronize(device);
        cudaProfilerStop();
      }
#endif
      const auto t0 = Clock::now();
      torch::Tensor last;
      for (std::int64_t i = 0; i < steps; ++i) last = one_step();
      runtime::synchronize(device);
      const double ms = seconds_since(t0) * 1e3 / static_cast<double>(steps);
      const double peak = runtime::peak_gpu_memory_gib(device);
      overall_peak = std::max({overall_peak, harden_peak, peak});
      const double tflops = step_flops / (ms * 1e-3) / 1e12;
      const double over = floor_ms > 0 ? ms / floor_ms : 0;
      const double loss = last.item<double>();
      schedule_s += harden_ms * 1e-3 + paper_steps * ms * 1e-3;
      std::printf("| %lld | %.3f | %.2f | %.4g | %.1f | %.2fx | %.2f | %.0f | %.2f | %.4g |\n", (long long)(it + 1), t,
                  ms, tokens / (ms * 1e-3), tflops, over, peak, harden_ms, harden_peak, loss);
      per_iteration.push_back({{"iteration", it + 1},
                               {"soft_fraction", t},
                               {"ms_per_step", ms},
                               {"tokens_per_s", tokens / (ms * 1e-3)},
                               {"tflops", tflops},
                               {"step_over_floor", over},
                               {"steps_peak_gpu_gib", peak},
                               {"harden_ms", harden_ms},
                               {"harden_peak_gpu_gib", harden_peak},
                               {"loss", loss}});
      std::fflush(stdout);
    }
    const double peak = overall_peak;
    nlohmann::json result{{"variant", variant.name},
                          {"kernels", trainer.runs_kernels()},
                          {"first_iteration_ms_per_step", per_iteration[0]["ms_per_step"]},
                          {"setup_peak_gpu_gib", init_peak},
                          {"peak_gpu_gib", peak},
                          {"iterations", per_iteration}};
    if (n_iterations == static_cast<std::int64_t>(thresholds.size())) {
      result["schedule_minutes_per_block"] = schedule_s / 60.0;
      std::printf(
          "whole schedule (%zu iterations x %.0f steps, measured per iteration): %.2f min per block, "
          "%.2f h for 32 blocks, %.2f h for 80 blocks; peak %.2f GiB\n",
          thresholds.size(), paper_steps, schedule_s / 60.0, schedule_s * 32 / 3600.0, schedule_s * 80 / 3600.0, peak);
    }
    results.push_back(result);

    if (first) {
      // Phase profile at the last timed iteration: each phase synchronised, 20 steps.
      const int n = cuda ? 20 : 2;
      auto phase = [&](const char* name, auto&& f) {
        runtime::synchronize(device);
        const auto p0 = Clock::now();
        auto out = f();
        runtime::synchronize(device);
        profile[name] += seconds_since(p0) * 1e3 / n;
        return out;
      };
      for (int i = 0; i < n; ++i) {
        auto xy = phase("1 batch (prefetched copy, wait)", [&] {
          auto b = batches.take();
          batches.prefetch(batch_indices());
          return b;
        });
        phase("2 soft weights alone (7 Linears)", [&] {
          for (auto& [kind, l] : trainer.layers()) l.weight(variant.dtype);
          return 0;
        });
        auto loss = phase("3 soft weights + block forward + loss", [&] { return trainer.loss(xy[0], xy[1]); });
        phase("4 backward (autograd)", [&] {
          trainer.backward(loss);
          return 0;
        });
        phase("5 gradients of nu and v + Adam", [&] {
          trainer.apply_adam(loss);
          return 0;
        });
      }
    }
  }
  std::printf("\nphase profile (%s, last timed iteration, synchronised, ms per step):\n",
              variants.front().name.c_str());
  for (const auto& [name, ms] : profile) std::printf("  %-45s %8.2f\n", name.c_str(), ms);
  std::printf("(each phase is synchronised, so they add up to more than the pipelined step)\n");
  if (!json_path.empty()) {
    nlohmann::json j{{"device", cuda ? device_name(device) : std::string("cpu")},
                     {"samples", samples},
                     {"seq", seq},
                     {"hidden", hidden},
                     {"ffn", ffn},
                     {"heads", heads},
                     {"kv_heads", c.num_kv_heads},
                     {"batch", batch},
                     {"wbits", wbits},
                     {"group", group},
                     {"steps_per_iteration", steps},
                     {"warmup_per_iteration", warmup},
                     {"schedule", schedule},
                     {"store", store},
                     {"step_tflop", step_flops / 1e12},
                     {"matmul_tflops", matmul_tflops},
                     {"floor_ms", floor_ms},
                     {"variants", results},
                     {"profile_ms", profile}};
    std::ofstream(json_path) << j.dump(2);
  }
  return 0;
}
