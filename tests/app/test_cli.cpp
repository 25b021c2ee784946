// The tessera command line, run as a user would run it: outputs, --json, exit codes and messages.
#include <sys/stat.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "cli_runner.h"
#include "runtime/error_message.h"
#include "tessera_test.h"
#include "test_data.h"

namespace {
using tessera_test::last_json;
using tessera_test::run_cli;
}  // namespace

class TestCli : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void infoJsonDescribesTheModel() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto r = run_cli("info --model \"" + model + "\" --json");
    QCOMPARE(r.status, 0);
    const auto j = last_json(r.out);
    QCOMPARE(j["layers"].get<int>(), 5);
    QCOMPARE(j["kv_heads"].get<int>(), 4);
    QCOMPARE(j["parameters"].get<long long>(), 260032LL);
    QCOMPARE(j["format"].get<std::string>(), std::string("llama2.c"));
  }

  void tokenizeCountsWikiText2() {
    TESSERA_REQUIRE_DATA(tok, "tokenizers/llama2/tokenizer.model");
    TESSERA_REQUIRE_DATA(wiki, "text/wikitext-2-raw/wiki.test.joined.txt");
    auto r = run_cli("tokenize --tokenizer \"" + tok + "\" --text \"" + wiki + "\"");
    QCOMPARE(r.status, 0);
    QCOMPARE(r.out, std::string("341469\n"));
    r = run_cli("tokenize --tokenizer \"" + tok + "\" --text \"" + wiki + "\" --no-bos");
    QCOMPARE(r.out, std::string("341468\n"));
  }

  void generateAndEvalWork() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    auto r = run_cli("generate --model \"" + model + "\" --max-tokens 30 --json");
    QCOMPARE(r.status, 0);
    QVERIFY(last_json(r.out)["text"].get<std::string>().rfind("Once upon a time, there was a little girl named Lily.",
                                                              0) == 0);
    r = run_cli("eval --model \"" + model + "\" --text \"" + text + "\" --seq-len 256 --batch 4 --json");
    QCOMPARE(r.status, 0);
    const auto j = last_json(r.out);
    QCOMPARE(j["windows"].get<int>(), 15537 / 256);
    QCOMPARE(j["newlines"].get<std::string>(), std::string("universal"));
    QCOMPARE(j["seq_len"].get<int>(), 256);
    QVERIFY(j["ppl"].get<double>() > 1.0 && j["ppl"].get<double>() < 20.0);
    for (const char* key : {"tokens", "seconds", "tokens_per_s", "device", "dtype"}) QVERIFY(j.contains(key));
  }

  void convertWritesALoadableFolder() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    const auto out = tessera_test::fresh_temp_dir("cli-convert") + "/hf";
    auto r = run_cli("convert --model \"" + model + "\" --out \"" + out + "\"");
    QCOMPARE(r.status, 0);
    r = run_cli("info --model \"" + out + "\" --json");
    QCOMPARE(r.status, 0);
    QCOMPARE(last_json(r.out)["format"].get<std::string>(), std::string("Hugging Face safetensors"));
  }

  void errorsAreMessagesWithNonZeroExit() {
    auto r = run_cli("eval --model /nonexistent/model.bin --text x.txt");
    QCOMPARE(r.status, 1);
    QVERIFY2(r.out.find("error: model /nonexistent/model.bin does not exist") != std::string::npos, r.out.c_str());
    r = run_cli("eval --modle x");
    QCOMPARE(r.status, 1);
    QVERIFY(r.out.find("unknown option --modle") != std::string::npos);
    r = run_cli("info");
    QVERIFY(r.out.find("--model is required") != std::string::npos);
    r = run_cli("frobnicate");
    QCOMPARE(r.status, 2);
    r = run_cli("generate --model x.bin --max-tokens lots");
    QVERIFY(r.out.find("--max-tokens expects an integer") != std::string::npos);
  }

  // Hostile values: an int setting beyond int's range is refused, not truncated (4294967298 was
  // taken as 2 bits); a FIFO as the text is refused instead of blocking forever; nothing is written.
  void hostileValuesAreRefused() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(calib, "text/tinystories/train-sample.txt");
    const auto dir = tessera_test::fresh_temp_dir("cli-hostile");
    auto r = run_cli("quantize --model \"" + model + "\" --calib \"" + calib + "\" --out \"" + dir +
                     "/run\" --method rtn --wbits 4294967298");
    QCOMPARE(r.status, 1);
    QVERIFY2(r.out.find("--wbits 4294967298 is out of range") != std::string::npos, r.out.c_str());
    QVERIFY(!std::filesystem::exists(dir + "/run"));
    const auto fifo = dir + "/text.fifo";
    QCOMPARE(::mkfifo(fifo.c_str(), 0600), 0);
    r = run_cli("eval --model \"" + model + "\" --text \"" + fifo + "\"");
    QCOMPARE(r.status, 1);
    QVERIFY2(r.out.find("is not a regular file") != std::string::npos, r.out.c_str());
    // Generation: NaN temperature, a prompt longer than the context (stories260K: 512 tokens).
    r = run_cli("generate --model \"" + model + "\" --temperature nan");
    QCOMPARE(r.status, 1);
    QVERIFY2(r.out.find("--temperature must be a finite number") != std::string::npos, r.out.c_str());
    std::string long_prompt;
    for (int i = 0; i < 400; ++i) long_prompt += "the cat ";
    r = run_cli("generate --model \"" + model + "\" --prompt \"" + long_prompt + "\"");
    QCOMPARE(r.status, 1);
    QVERIFY2(r.out.find("the model's context is 512: no room to generate") != std::string::npos, r.out.c_str());
    // An absurd group size is refused before anything is allocated or written (was std::bad_alloc
    // and a half-made run directory).
    r = run_cli("quantize --model \"" + model + "\" --calib \"" + calib + "\" --out \"" + dir +
                "/run\" --method rtn --group 1000000000000");
    QCOMPARE(r.status, 1);
    QVERIFY2(r.out.find("group size 1000000000000 is larger than any row") != std::string::npos, r.out.c_str());
    QVERIFY(!std::filesystem::exists(dir + "/run"));
  }

  // export --out naming the run itself (or a folder holding it) would replace the run with --force,
  // and quantize into it without --resume would start over: both refused, the run untouched.
  void exportNeverReplacesItsRun() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(calib, "text/tinystories/train-sample.txt");
    const auto dir = tessera_test::fresh_temp_dir("cli-export-over-run");
    const auto run = dir + "/run";
    auto r = run_cli("quantize --model \"" + model + "\" --calib \"" + calib + "\" --out \"" + run +
                     "\" --method rtn --wbits 4 --group 32 --samples 4 --seq-len 64");
    QVERIFY2(r.status == 0, r.out.c_str());
    for (const std::string out : {run, run + "/", dir}) {
      r = run_cli("export --run \"" + run + "\" --out \"" + out + "\" --format hf --force");
      QCOMPARE(r.status, 1);
      QVERIFY2(r.out.find("writing it would replace the run") != std::string::npos, r.out.c_str());
      QVERIFY(std::filesystem::exists(run + "/run.json"));
    }
    // quantize into the run without --resume: refused with what to do, and run.json keeps its bytes.
    auto read = [](const std::string& path) {
      std::ifstream in(path, std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    const auto manifest = read(run + "/run.json");
    r = run_cli("quantize --model \"" + model + "\" --calib \"" + calib + "\" --out \"" + run +
                "\" --method rtn --wbits 4 --group 32 --samples 4 --seq-len 64");
    QCOMPARE(r.status, 1);
    QVERIFY2(r.out.find("already holds a run; pass --resume") != std::string::npos, r.out.c_str());
    QCOMPARE(read(run + "/run.json"), manifest);
  }

  // What reaches the user when an exception gets to the CLI's (or the worker's) last handler:
  // std::filesystem's as "<operation> <path>: <reason>", libtorch's first line without its C++
  // backtrace (out of memory with what to do), std::bad_alloc as host memory exhausted.
  void lastResortMessagesNameWhatIsWrong() {
    const std::filesystem::filesystem_error fe("cannot create directories", "/data/runs/x",
                                               std::make_error_code(std::errc::no_space_on_device));
    QCOMPARE(tessera::runtime::error_message(fe),
             std::string("cannot create directories /data/runs/x: No space left on device"));
    try {
      (void)torch::empty({1LL << 46}, torch::kFloat32);  // 256 TiB: beyond the address space, even with overcommit
      QFAIL("allocating 256 TiB succeeded");
    } catch (const std::exception& e) {
      const auto m = tessera::runtime::error_message(e);
      QVERIFY2((m.find("out of memory") == 0 || m.find("out of host memory") == 0) &&
                   m.find("tessera plan") != std::string::npos,
               m.c_str());
      QVERIFY2(m.find("frame #") == std::string::npos && m.find('\n') == std::string::npos, m.c_str());
    }
    QVERIFY(tessera::runtime::error_message(std::bad_alloc()).find("out of host memory") == 0);
    QCOMPARE(tessera::runtime::error_message(std::runtime_error("plain")), std::string("plain"));
  }
};

TESSERA_TEST_MAIN(TestCli, infoJsonDescribesTheModel, tokenizeCountsWikiText2, generateAndEvalWork,
                  convertWritesALoadableFolder, errorsAreMessagesWithNonZeroExit, hostileValuesAreRefused,
                  exportNeverReplacesItsRun, lastResortMessagesNameWhatIsWrong)
#ifdef TESSERA_TEST_WITH_QT
#include "test_cli.moc"
#endif
