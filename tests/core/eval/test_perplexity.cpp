// Generation and the perplexity protocol on real models, on CPU and (when present) CUDA.
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "api/model_jobs.h"
#include "eval/perplexity.h"
#include "model/model_loader.h"
#include "tessera_test.h"
#include "test_data.h"
#include "test_device.h"
#include "text/text_file.h"
#include "text/tokenizer_loader.h"

using namespace tessera;

namespace {
using tessera_test::kStories;
const char* kSample = "text/tinystories/sample.txt";
}  // namespace

class TestPerplexity : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void greedyGenerationReproducesStories260K() {
    TESSERA_REQUIRE_DATA(model, kStories);
    api::GenerateRequest r;
    r.model_path = model;
    r.max_tokens = 40;
    const std::string text = api::generate(r);
    const std::string expected =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
    QVERIFY2(text.rfind(expected, 0) == 0, ("generated: " + text).c_str());
  }

  void samplingIsSeeded() {
    TESSERA_REQUIRE_DATA(model, kStories);
    api::GenerateRequest r;
    r.model_path = model;
    r.max_tokens = 30;
    r.temperature = 1.0;
    r.seed = 123;
    const auto a = api::generate(r), b = api::generate(r);
    QCOMPARE(a, b);
    r.seed = 124;
    QVERIFY(api::generate(r) != a);
  }

  void stories260KPerplexityOnTinyStoriesSample() {
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(text, kSample);
    api::EvalRequest r;
    r.model_path = model;
    r.text_path = text;
    const auto rep = api::evaluate_perplexity(r);
    QCOMPARE(rep.seq_len, std::int64_t(512));  // min(2048, context 512)
    // sample.txt has Windows line endings; read with universal newlines it is the 15,537 tokens the
    // official TesseraQ evaluation and an independent fp64 forward see, with their 5.558252.
    QCOMPARE(rep.text_tokens, std::int64_t(15537));
    QCOMPARE(rep.windows, std::int64_t(15537 / 512));  // trailing 177 tokens dropped
    QCOMPARE(rep.newlines, std::string("universal"));
    TESSERA_COMPARE_RELATIVE(rep.perplexity, 5.558252, 1e-6);
    QVERIFY(rep.tokens_per_second > 0);
  }

  void protocolEqualsManualWindowedCrossEntropy() {
    TESSERA_REQUIRE_DATA(model_path, kStories);
    TESSERA_REQUIRE_DATA(text_path, kSample);
    const auto model = model::load_model(model_path);
    const auto tok = text::load_tokenizer(text::find_tokenizer_for_model(model_path));
    const auto ids = tok->encode(text::read_text_file(text_path), true, false);
    QCOMPARE(ids.front(), tok->bos_id());
    QCOMPARE(std::count(ids.begin(), ids.end(), tok->bos_id()), std::ptrdiff_t(1));  // one BOS only
    eval::PerplexityOptions o;
    o.seq_len = 300;
    const auto res = eval::evaluate_perplexity(model, ids, o);
    double sum = 0;
    torch::NoGradGuard ng;
    for (std::int64_t w = 0; w < res.windows; ++w) {
      std::vector<std::int64_t> win(ids.begin() + w * 300, ids.begin() + (w + 1) * 300);
      auto x = torch::tensor(win).unsqueeze(0);
      auto logits = model.forward(x)[0];
      sum += torch::nn::functional::cross_entropy(logits.narrow(0, 0, 299), x[0].narrow(0, 1, 299)).item<double>();
    }
    QCOMPARE(res.windows, std::int64_t(15537 / 300));
    TESSERA_COMPARE_RELATIVE(res.perplexity, std::exp(sum / res.windows), 1e-6);
    // Batching windows must not change the result.
    o.batch_size = 7;
    TESSERA_COMPARE_RELATIVE(eval::evaluate_perplexity(model, ids, o).perplexity, res.perplexity, 1e-6);
  }

  void hfModelGeneratesAStoryFromStartToken() {
    // TinyStories-656K ships only tokenizer.json (read by a later issue); its vocabulary is read
    // here directly to decode a greedy continuation of <|start_story|> and check it is English.
    TESSERA_REQUIRE_DATA(dir, "models/TinyStories-656K");
    const auto model = model::load_model(dir);
    nlohmann::json tok;
    std::ifstream(dir + "/tokenizer.json") >> tok;
    std::map<std::int64_t, std::string> vocab;
    for (auto it = tok["model"]["vocab"].begin(); it != tok["model"]["vocab"].end(); ++it)
      vocab[it.value().get<std::int64_t>()] = it.key();
    std::vector<std::int64_t> ids = {1};
    torch::NoGradGuard ng;
    for (int i = 0; i < 40; ++i) {
      auto logits = model.forward(torch::tensor(ids).unsqueeze(0))[0];
      ids.push_back(logits[-1].argmax().item<std::int64_t>());
    }
    std::string text;
    for (std::size_t i = 1; i < ids.size(); ++i) text += vocab[ids[i]];
    std::printf("greedy: %s\n", text.c_str());
    QVERIFY2(text.find("\xE2\x96\x81the") != std::string::npos || text.find("\xE2\x96\x81was") != std::string::npos,
             ("not a story: " + text).c_str());
  }

  void cpuAndCudaAgree() {
    if (!tessera_test::cuda_wanted()) QSKIP("CUDA not available on this machine");
    QVERIFY2(torch::cuda::is_available(), "TESSERA_TEST_DEVICE=cuda but libtorch sees no CUDA device");
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(text, kSample);
    api::EvalRequest r;
    r.model_path = model;
    r.text_path = text;
    const auto cpu = api::evaluate_perplexity(r);
    r.device = "cuda";
    const auto gpu = api::evaluate_perplexity(r);
    std::printf("ppl cpu %.8f cuda %.8f\n", cpu.perplexity, gpu.perplexity);
    TESSERA_COMPARE_RELATIVE(gpu.perplexity, cpu.perplexity, 1e-4);
    for (const char* dtype : {"bf16", "fp16"}) {
      r.dtype = dtype;
      const auto half = api::evaluate_perplexity(r);
      std::printf("ppl cuda %s %.6f\n", dtype, half.perplexity);
      TESSERA_COMPARE_RELATIVE(half.perplexity, cpu.perplexity, 2e-2);
    }
  }

  void badRequestsAreRejected() {
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(text, kSample);
    TESSERA_REQUIRE_DATA(llama2_tok, "tokenizers/llama2/tokenizer.model");
    api::EvalRequest r;
    r.model_path = model;
    r.text_path = text;
    r.seq_len = 1024;
    TESSERA_VERIFY_THROWS_WITH(api::evaluate_perplexity(r), "exceeds the model's context of 512");
    r.seq_len = 0;
    r.tokenizer_path = llama2_tok;
    TESSERA_VERIFY_THROWS_WITH(api::evaluate_perplexity(r), "not the model's tokenizer");
    r.tokenizer_path = "";
    const auto dir = tessera_test::fresh_temp_dir("short-text");
    std::ofstream(dir + "/short.txt") << "Once upon a time.";
    r.text_path = dir + "/short.txt";
    TESSERA_VERIFY_THROWS_WITH(api::evaluate_perplexity(r), "fewer than one window of 512");
    r.text_path = text;
    r.device = "tpu";
    TESSERA_VERIFY_THROWS_WITH(api::evaluate_perplexity(r), "unknown device \"tpu\"");
    r.device = "cpu";
    r.dtype = "int4";
    TESSERA_VERIFY_THROWS_WITH(api::evaluate_perplexity(r), "unknown dtype \"int4\"");
  }

  void stopTokenCancelsEvaluation() {
    TESSERA_REQUIRE_DATA(model, kStories);
    TESSERA_REQUIRE_DATA(text, kSample);
    api::EvalRequest r;
    r.model_path = model;
    r.text_path = text;
    StopToken stop;
    bool cancelled = false;
    std::int64_t last_done = 0, stopped_at = -1, windows = 0;
    try {
      api::evaluate_perplexity(
          r,
          [&](const api::EvalProgress& p) {
            last_done = p.windows_done;
            windows = p.windows_total;
            if (stopped_at < 0 && p.windows_done >= 3) {
              stopped_at = p.windows_done;
              stop.request_stop();
            }
          },
          stop);
    } catch (const Cancelled&) {
      cancelled = true;
    }
    QVERIFY(cancelled);
    // Honoured before any further window starts: only those already being scored finish, at most
    // one (batch of one window) per CPU thread; one on the GPU, which scores them in sequence.
    const std::int64_t in_flight = torch::get_num_threads();
    QVERIFY2(last_done >= stopped_at && last_done <= stopped_at + in_flight && last_done < windows,
             (std::to_string(last_done) + " windows done, stop at " + std::to_string(stopped_at)).c_str());
  }
};

TESSERA_TEST_MAIN(TestPerplexity, greedyGenerationReproducesStories260K, samplingIsSeeded,
                  stories260KPerplexityOnTinyStoriesSample, protocolEqualsManualWindowedCrossEntropy,
                  hfModelGeneratesAStoryFromStartToken, cpuAndCudaAgree, badRequestsAreRejected,
                  stopTokenCancelsEvaluation)
#ifdef TESSERA_TEST_WITH_QT
#include "test_perplexity.moc"
#endif
