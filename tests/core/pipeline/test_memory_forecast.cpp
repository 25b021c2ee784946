// The memory forecast (pipeline/memory_forecast.h): its arithmetic on known shapes, the refusal and
// its suggestion, and the forecast against the measured peak RSS of a real run of the CLI.
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_runner.h"
#include "model/model_loader.h"
#include "pipeline/memory_forecast.h"
#include "tessera_test.h"
#include "test_data.h"

namespace {

using tessera::pipeline::ForecastOptions;
using tessera::pipeline::MemoryBudget;
using tessera::pipeline::MemoryForecast;
using tessera::pipeline::RunConfig;

// Llama-2-7B's shapes (config arithmetic only; no weights).
tessera::model::LlamaConfig llama7b() {
  tessera::model::LlamaConfig m;
  m.hidden_size = 4096;
  m.intermediate_size = 11008;
  m.num_layers = 32;
  m.num_heads = m.num_kv_heads = 32;
  m.head_dim = 128;
  m.vocab_size = 32000;
  m.max_position_embeddings = 4096;
  m.torch_dtype = "float16";
  return m;
}

RunConfig rtn_run(std::int64_t samples, const std::string& device = "cpu") {
  RunConfig c;
  c.model = "/models/llama-7b";  // a folder: Hugging Face loader
  c.calib = "corpus.txt";
  c.method = "rtn";
  c.samples = samples;
  c.seq_len = 2048;
  c.batch_size = 8;
  c.device = device;
  return c;
}

double term_bytes(const std::vector<tessera::pipeline::MemoryTerm>& terms, const std::string& prefix) {
  double sum = 0;
  for (const auto& t : terms)
    if (t.name.rfind(prefix, 0) == 0) sum += t.bytes;
  return sum;
}

// Peak RSS of the largest child this process has waited for (getrusage, RUSAGE_CHILDREN).
double children_max_rss_bytes() {
  struct rusage u {};
  ::getrusage(RUSAGE_CHILDREN, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0;
}

}  // namespace

class TestMemoryForecast : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  // quantization_run.cpp keeps x_fp, x_q and targets and makes the next x_q beside them: four
  // [samples, seq_len, hidden] fp32 chains on the CPU, plus the window ids (int32 vector + int64).
  void moreSamplesAddExactlyTheirActivations() {
    const auto m = llama7b();
    ForecastOptions o;
    o.corpus_bytes = 2 << 20;
    const auto a = forecast_memory(rtn_run(128), m, o);
    const auto b = forecast_memory(rtn_run(256), m, o);
    const double per_sample = 2048.0 * 4096 * 4;
    QCOMPARE(a.activation_bytes, 128 * per_sample);
    QCOMPARE(b.host_bytes - a.host_bytes, 128 * (4 * per_sample + 2048.0 * (4 + 8)));
    QCOMPARE(term_bytes(b.host_terms, "calibration activations"), 4 * b.activation_bytes);
    QVERIFY2(b.host_peak_phase.find("next quantized-chain inputs") != std::string::npos, b.host_peak_phase.c_str());
    QCOMPARE(a.gpu_bytes, 0.0);
    // The 7B model's fp32 weights are part of the host peak, and the terms add up to it.
    QVERIFY(term_bytes(a.host_terms, "model weights") >= static_cast<double>(m.parameter_count()) * 4);
    QCOMPARE(term_bytes(a.host_terms, ""), a.host_bytes);
  }

  // On CUDA the activations move to the GPU when three chains take less than half its free
  // memory, else to pinned host memory (rounded up to powers of two by the host allocator).
  void cudaMovesActivationsOffTheHost() {
    const auto m = llama7b();
    ForecastOptions o;
    o.gpu_free_bytes = 80e9;
    const auto cpu = forecast_memory(rtn_run(128), m, o);
    const auto gpu = forecast_memory(rtn_run(128, "cuda"), m, o);
    QCOMPARE(gpu.placement, std::string("gpu"));
    QCOMPARE(term_bytes(gpu.host_terms, "calibration activations"), 0.0);
    QCOMPARE(term_bytes(gpu.gpu_terms, "calibration activations"), 4 * gpu.activation_bytes);
    QVERIFY(gpu.gpu_bytes > 4 * gpu.activation_bytes);
    QVERIFY(gpu.host_bytes < cpu.host_bytes);
    // 512 samples x 2048 x 4096 fp32 = 16 GiB per chain: 48 GiB is more than half of 80 GB.
    const auto pinned = forecast_memory(rtn_run(512, "cuda"), m, o);
    QCOMPARE(pinned.placement, std::string("pinned host memory"));
    QCOMPARE(term_bytes(pinned.gpu_terms, "calibration activations"), 0.0);
    QCOMPARE(term_bytes(pinned.host_terms, "calibration activations"), 4 * pinned.activation_bytes);
    // Flash attention on CUDA: no [batch, heads, T, T] term; the CPU's libtorch 1.13 has one.
    QCOMPARE(term_bytes(gpu.gpu_terms, "attention scores"), 0.0);
    QVERIFY(term_bytes(cpu.host_terms, "attention scores") >= 2.0 * 8 * 32 * 2048 * 2048 * 4);
  }

  // A forecast above the budget is refused with its largest terms and a --samples value that
  // fits (and whose next value up does not).
  void refusalNamesTermsAndAFittingSetting() {
    const auto m = llama7b();
    ForecastOptions o;
    auto c = rtn_run(256);
    const auto f = forecast_memory(c, m, o);
    MemoryBudget budget;
    budget.host_available_bytes = f.host_bytes * 0.9;
    QVERIFY(tessera::pipeline::memory_refusal(f, c, m, o, MemoryBudget{f.host_bytes, -1}).empty());
    const auto msg = tessera::pipeline::memory_refusal(f, c, m, o, budget);
    QVERIFY2(msg.find("of host memory") != std::string::npos, msg.c_str());
    QVERIFY2(msg.find("calibration activations") != std::string::npos, msg.c_str());
    QVERIFY2(msg.find("--force") != std::string::npos, msg.c_str());
    const auto at = msg.find("--samples ");
    QVERIFY2(at != std::string::npos, msg.c_str());
    const auto n = std::stoll(msg.substr(at + 10));
    QVERIFY(n > 1 && n < 256);
    c.samples = n;
    QVERIFY(forecast_memory(c, m, o).host_bytes <= budget.host_available_bytes);
    c.samples = n + 1;
    QVERIFY(forecast_memory(c, m, o).host_bytes > budget.host_available_bytes);
  }

  // `plan` prints the same forecast as the library; `quantize` refuses a run that cannot fit this
  // machine before any work (no run directory), and names a setting that would fit.
  void cliPlanAndPreflightRefusal() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/train-sample.txt");
    const std::string args = "--model \"" + model + "\" --calib \"" + text + "\" --method rtn --device cpu";
    auto r = tessera_test::run_cli("plan " + args + " --samples 16 --seq-len 128 --json");
    QCOMPARE(r.status, 0);
    const auto j = tessera_test::last_json(r.out);
    QVERIFY2(j.contains("host_bytes"), r.out.c_str());
    QVERIFY(j["fits"].get<bool>());
    RunConfig c;
    c.model = model;
    c.calib = text;
    c.samples = 16;
    c.seq_len = 128;
    ForecastOptions o;
    o.corpus_bytes = static_cast<double>(std::filesystem::file_size(text));
    o.cpu_threads = j.value("cpu_threads", 0) > 0 ? j["cpu_threads"].get<int>() : o.cpu_threads;
    const auto f = forecast_memory(c, tessera::model::read_model_config(model), o);
    QCOMPARE(j["host_bytes"].get<double>(), f.host_bytes);

    // 10^6 windows of 512 tokens: 122 GiB per chain.
    const auto out = tessera_test::fresh_temp_dir("forecast-refusal") + "/run";
    r = tessera_test::run_cli("quantize " + args + " --samples 1000000 --seq-len 512 --out \"" + out + "\"");
    QCOMPARE(r.status, 1);
    QVERIFY2(r.out.find("error: not enough memory") != std::string::npos, r.out.c_str());
    QVERIFY2(r.out.find("calibration activations") != std::string::npos, r.out.c_str());
    QVERIFY2(r.out.find("--samples ") != std::string::npos, r.out.c_str());
    QVERIFY(!std::filesystem::exists(out));
    r = tessera_test::run_cli("plan " + args + " --samples 1000000 --seq-len 512");
    QCOMPARE(r.status, 0);
    QVERIFY2(r.out.find("does not fit") != std::string::npos, r.out.c_str());
  }

  // A real run (TinyStories-656K, TesseraQ of the cpu-quick preset, 128 windows of 256 tokens,
  // whose peak is in the PAR steps after the AWQ init, 430 MiB above the process baseline): the
  // forecast is within 15% of the peak resident memory the child process reached.
  void forecastWithin15PercentOfMeasuredPeak() {
    TESSERA_REQUIRE_DATA(model, "models/TinyStories-656K/config.json");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/train-sample.txt");
    const auto folder = std::filesystem::path(model).parent_path().string();
    const auto out = tessera_test::fresh_temp_dir("forecast-measured") + "/run";
    const std::string args = "--model \"" + folder + "\" --calib \"" + text +
                             "\" --preset cpu-quick --samples 128 --seq-len 256 --device cpu";
    auto r = tessera_test::run_cli("plan " + args + " --json");
    QCOMPARE(r.status, 0);
    const auto plan = tessera_test::last_json(r.out);
    const double forecast = plan["host_bytes"].get<double>();
    QVERIFY2(plan["host_peak_phase"].get<std::string>().rfind("block 0: tesseraq", 0) == 0, r.out.c_str());
    r = tessera_test::run_cli("quantize " + args + " --out \"" + out + "\" --json");
    QCOMPARE(r.status, 0);
    const auto j = tessera_test::last_json(r.out);
    const double measured = j["max_rss_bytes"].get<double>();
    QCOMPARE(j["forecast_host_bytes"].get<double>(), forecast);
    // The same peak seen from here: the largest child waited for.
    QVERIFY(children_max_rss_bytes() >= measured * 0.99);
    const double ratio = forecast / measured;
    std::printf("forecast %.1f MiB, measured peak RSS %.1f MiB, ratio %.3f\n", forecast / 1048576.0,
                measured / 1048576.0, ratio);
    QVERIFY2(ratio > 0.85 && ratio < 1.15, ("forecast " + std::to_string(forecast) + " measured " +
                                            std::to_string(measured) + " ratio " + std::to_string(ratio))
                                               .c_str());
  }
};

TESSERA_TEST_MAIN(TestMemoryForecast, moreSamplesAddExactlyTheirActivations, cudaMovesActivationsOffTheHost,
                  refusalNamesTermsAndAFittingSetting, cliPlanAndPreflightRefusal,
                  forecastWithin15PercentOfMeasuredPeak)

#ifdef TESSERA_TEST_WITH_QT
#include "test_memory_forecast.moc"
#endif
