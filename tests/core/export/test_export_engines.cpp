// Exports read by an independent implementation of the engines' loaders (tests/engines/
// engine_readers.py, numpy): GPTQ v2 at 2, 3, 4 and 8 bits, v1 at 4, AWQ-GEMM (from stories260K and from
// the Hugging Face TinyStories-656K), GGUF F32/F16/Q4_1/Q5_1, each
// run through a float64 LLaMA forward pass with its engine's conventions (GPTQ/AWQ unpacking, GGUF
// q/k row order with llama.cpp's adjacent-pair RoPE) must give the logits of the run's fake-quant
// Hugging Face export, and the readers' transformers-convention forward pass of that folder must
// give Tessera's own logits. Tessera's importer round trips cannot catch a convention that its
// writer and reader share; this can.
#include <torch/torch.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/export_jobs.h"
#include "export_test_support.h"
#include "model/model_loader.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;

namespace {

struct ShellOutput {
  int status = -1;
  std::string text;
};

ShellOutput run_shell(const std::string& command) {
  ShellOutput out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return out;
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe)) out.text += buffer.data();
  out.status = ::pclose(pipe);
  return out;
}

std::string shell_quoted(const std::string& s) { return "'" + s + "'"; }

torch::Tensor read_float64(const std::string& path, std::int64_t rows, std::int64_t cols) {
  auto t = torch::empty({rows, cols}, torch::kFloat64);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(t.data_ptr<double>()), static_cast<std::streamsize>(t.numel() * 8));
  if (!in) throw std::runtime_error(path + " is missing or short");
  return t;
}

// "" when the interpreter can run the readers, else what is missing.
std::string python_missing() {
  const auto probe = run_shell(std::string(TESSERA_TEST_PYTHON) + " -c 'import numpy'");
  if (probe.status == 0) return "";
  return "the engine readers need Python 3 with numpy (Debian: python3-numpy, which installers/"
         "install-deps-debian.sh installs); " +
         std::string(TESSERA_TEST_PYTHON) + " says: " + probe.text;
}

// Without numpy the test fails (the check is the point of it), unless TESSERA_ALLOW_NO_NUMPY is
// set where it cannot be installed (the GPU machine).
#define TESSERA_REQUIRE_NUMPY()                                                    \
  do {                                                                             \
    const auto why = python_missing();                                             \
    if (!why.empty() && std::getenv("TESSERA_ALLOW_NO_NUMPY")) QSKIP(why.c_str()); \
    if (!why.empty()) QFAIL(why.c_str());                                          \
  } while (0)

// Exports `run` as `formats` (fp32 scales and floats: the run's numbers exactly) beside its fp32
// fake-quant folder, and has the engine readers compare each with that folder's logits.
// `half_weights`: the formats hold the Linear and embedding weights in fp16 (gguf-f16), and the
// readers round the reference's the same way.
void engines_agree(const std::string& run, const std::string& name, const std::vector<std::string>& formats,
                   bool half_weights = false) {
  const auto base = tessera_test::fresh_temp_dir("export-engines-" + name);
  const std::string reference = base + "/reference-hf";
  api::export_run({run, reference, "hf", "fp32", false});
  // Token ids spread over the vocabulary, BOS first.
  const auto vocab = model::read_model_config(reference).vocab_size;
  std::vector<std::int64_t> ids = {1};
  for (std::int64_t i = 1; i < 48; ++i) ids.push_back(3 + (i * 7919) % (vocab - 3));
  std::string id_list;
  for (auto id : ids) id_list += (id_list.empty() ? "" : ",") + std::to_string(id);
  const std::string reference_logits = base + "/reference-logits.f64";
  std::string command = std::string(TESSERA_TEST_PYTHON) + " " + shell_quoted(TESSERA_TEST_ENGINE_READERS) +
                        (half_weights ? " --half-weights" : "") + " --ids " + id_list + " --write-reference-logits " +
                        shell_quoted(reference_logits) + " " + shell_quoted(reference);
  for (const auto& id : formats) {
    const std::string out = base + "/" + id + (id.rfind("gguf", 0) == 0 ? ".gguf" : "");
    api::export_run({run, out, id, "fp32", false});
    command += " " + shell_quoted(out);
  }
  const auto result = run_shell(command);
  std::printf("%s:\n%s", name.c_str(), result.text.c_str());
  QVERIFY2(result.status == 0, result.text.c_str());
  if (half_weights) return;
  // The readers' transformers-convention forward pass of the reference folder is Tessera's own.
  const auto python = read_float64(reference_logits, static_cast<std::int64_t>(ids.size()), vocab);
  torch::NoGradGuard no_grad;
  const auto ours = model::load_model(reference).forward(torch::tensor(ids).view({1, -1}))[0].to(torch::kFloat64);
  const double rel = ((ours - python).abs().max() / python.abs().max()).item<double>();
  std::printf("Tessera's forward pass of the reference vs the readers': %.3e relative\n", rel);
  QVERIFY2(rel < 1e-5,
           ("Tessera's logits of " + reference + " differ from the readers' by " + std::to_string(rel)).c_str());
}

}  // namespace

class TestExportEngines : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void packedFormatsComputeTheRunsLogits() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_NUMPY();
    const auto w4 = tessera_test::rtn_run(4, "export-engines-w4");
    engines_agree(w4, "W4-g32", {"gptq", "gptq-v1", "awq"});  // this run's zero points are all >= 1
    engines_agree(tessera_test::rtn_run(8, "export-engines-w8"), "W8-g32", {"gptq"});
    engines_agree(tessera_test::rtn_run(3, "export-engines-w3"), "W3-g32", {"gptq"});
    engines_agree(tessera_test::rtn_run(2, "export-engines-w2"), "W2-g32", {"gptq"});
    // A Hugging Face checkpoint whose every Linear fits the packing (nothing left as float).
    TESSERA_REQUIRE_DATA(hf_model, "models/TinyStories-656K/config.json");
    const auto hf = tessera_test::rtn_run(4, "export-engines-hf-w4", 32, "models/TinyStories-656K");
    engines_agree(hf, "TinyStories-656K-W4-g32", {"gptq", "awq"});
  }

  void ggufComputesTheRunsLogitsWithLlamaCppRope() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_NUMPY();
    const auto w4 = tessera_test::rtn_run(4, "export-engines-gguf-w4");
    engines_agree(w4, "gguf-W4-g32", {"gguf-f32"});
    engines_agree(w4, "gguf-W4-g32-half", {"gguf-f16"}, /*half_weights=*/true);
    engines_agree(tessera_test::target_run("gguf-q4_1"), "gguf-W4-g32-target-q4_1", {"gguf-q4_1"});
    engines_agree(tessera_test::target_run("gguf-q5_1"), "gguf-W5-g32-target-q5_1", {"gguf-q5_1"});
    engines_agree(tessera_test::target_run("gguf-q4_0"), "gguf-W4-g32-target-q4_0", {"gguf-q4_0"});
    engines_agree(tessera_test::target_run("gguf-q5_0"), "gguf-W5-g32-target-q5_0", {"gguf-q5_0"});
    engines_agree(tessera_test::target_run("gguf-q8_0"), "gguf-W8-g32-target-q8_0", {"gguf-q8_0"});
  }
};

TESSERA_TEST_MAIN(TestExportEngines, packedFormatsComputeTheRunsLogits, ggufComputesTheRunsLogitsWithLlamaCppRope)
#ifdef TESSERA_TEST_WITH_QT
#include "test_export_engines.moc"
#endif
