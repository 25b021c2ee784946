// The worker protocol: every payload round-trips, versions and malformed lines are refused with
// messages naming what is wrong, a quantization run records its events in events.jsonl, a run
// directory is written by one process at a time, and `tessera worker` serves real jobs over pipes.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "api/device_memory.h"
#include "api/model_jobs.h"
#include "api/quantize_jobs.h"
#include "protocol/worker_protocol.h"
#include "rundir/event_json.h"
#include "rundir/run_directory.h"
#include "small_run.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;
using protocol::Json;
namespace fs = std::filesystem;

extern char** environ;

namespace {

// `tessera worker` with pipes on stdin and stdout; lines in, lines out.
class WorkerProcess {
 public:
  WorkerProcess() {
    int in[2], out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) throw Error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, in[1]);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    const std::string binary = tessera_test::cli_binary();
    char* argv[] = {const_cast<char*>(binary.c_str()), const_cast<char*>("worker"), nullptr};
    if (posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv, environ) != 0)
      throw Error("cannot start " + binary);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    to_ = ::fdopen(in[1], "w");
    from_ = ::fdopen(out[0], "r");
  }
  ~WorkerProcess() {
    if (to_) std::fclose(to_);
    if (from_) std::fclose(from_);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
  void send(const Json& j) {
    const std::string line = j.dump() + "\n";
    std::fwrite(line.data(), 1, line.size(), to_);
    std::fflush(to_);
  }
  // The next line; {} at end of output.
  Json receive() {
    std::string line;
    int c;
    while ((c = std::fgetc(from_)) != EOF && c != '\n') line.push_back(static_cast<char>(c));
    if (line.empty() && c == EOF) return Json();
    return protocol::parse_line(line);
  }
  // Lines up to (and including) the first of type result, error or cancelled for `job`.
  std::vector<Json> until_end_of(std::int64_t job) {
    std::vector<Json> lines;
    for (Json m = receive(); !m.is_null(); m = receive()) {
      lines.push_back(m);
      const std::string type = m["type"];
      if (m.value("job", std::int64_t{-1}) == job && (type == "result" || type == "error" || type == "cancelled"))
        break;
    }
    return lines;
  }
  int finish() {  // closes stdin and returns the exit status
    std::fclose(to_);
    to_ = nullptr;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  std::FILE* to_ = nullptr;
  std::FILE* from_ = nullptr;
};

std::vector<Json> read_jsonl(const std::string& path) {
  std::vector<Json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) lines.push_back(protocol::parse_line(line));
  return lines;
}

}  // namespace

class TestWorkerProtocol : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void runEventsRoundTrip() {
    using Kind = rundir::RunEvent::Kind;
    for (Kind kind :
         {Kind::RunStarted, Kind::BlockStarted, Kind::StepLoss, Kind::StepSkipped, Kind::HardFraction, Kind::LayerStats,
          Kind::BlockFinished, Kind::RunFinished, Kind::Memory, Kind::Evaluated, Kind::Log}) {
      rundir::RunEvent e;
      e.kind = kind;
      e.block = 3;
      e.total_blocks = 5;
      e.step = 17;
      e.total_steps = 60;
      e.iteration = 1;
      e.total_iterations = 2;
      e.train_loss = 0.125;
      e.lr_factor = 0.25;
      e.hard_fraction = 0.375;
      e.target_hard_fraction = 0.5;
      e.loss_rtn = 0.75;
      e.loss = 0.625;
      e.perplexity = 14.5;
      e.text_path = "/t.txt";
      e.elapsed_seconds = 12.5;
      e.layer = "gate_proj";
      e.message = "a message";
      e.rel_weight_error = 0.25;
      e.output_mse = 1e-3;
      e.flip_ratio = 0.0625;
      e.dst_min = 0.9;
      e.dst_max = 1.1;
      e.dst_std = 0.01;
      e.seconds = 2.5;
      e.eta_seconds = 7.5;
      e.gpu_memory_bytes = 1e9;
      e.rss_bytes = 2e9;
      const Json j = rundir::to_json(e);
      QCOMPARE(j["kind"].get<std::string>(), std::string(rundir::run_event_kind_name(kind)));
      const auto back = rundir::run_event_from_json(Json::parse(j.dump()));
      QVERIFY(back.kind == kind);
      QCOMPARE(back.block, e.block);
      // Each kind carries its own fields (run_events.h); those must come back exactly.
      if (kind == Kind::StepLoss) {
        QCOMPARE(back.step, e.step);
        QCOMPARE(back.total_steps, e.total_steps);
        QCOMPARE(back.iteration, e.iteration);
        QCOMPARE(back.train_loss, e.train_loss);
        QCOMPARE(back.gpu_memory_bytes, e.gpu_memory_bytes);
      }
      if (kind == Kind::StepSkipped) QCOMPARE(back.lr_factor, e.lr_factor);
      if (kind == Kind::HardFraction) {
        QCOMPARE(back.hard_fraction, e.hard_fraction);
        QCOMPARE(back.target_hard_fraction, e.target_hard_fraction);
      }
      if (kind == Kind::LayerStats) {
        QCOMPARE(back.layer, e.layer);
        QCOMPARE(back.output_mse, e.output_mse);
        QCOMPARE(back.dst_std, e.dst_std);
      }
      if (kind == Kind::BlockFinished) {
        QCOMPARE(back.loss_rtn, e.loss_rtn);
        QCOMPARE(back.loss, e.loss);
        QCOMPARE(back.eta_seconds, e.eta_seconds);
      }
      if (kind == Kind::Memory) {
        QCOMPARE(back.rss_bytes, e.rss_bytes);
        QCOMPARE(back.elapsed_seconds, e.elapsed_seconds);
      }
      if (kind == Kind::Log || kind == Kind::RunStarted) QCOMPARE(back.message, e.message);
      if (kind == Kind::Evaluated) {
        QCOMPARE(back.perplexity, e.perplexity);
        QCOMPARE(back.text_path, e.text_path);
      }
      // One field per number: a kind writes none of another kind's numbers.
      if (kind != Kind::BlockFinished) QVERIFY(!j.contains("loss") && !j.contains("loss_rtn"));
      QVERIFY(!j.contains("value") && !j.contains("before"));
    }
  }

  void jobPayloadsRoundTrip() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    api::EvalRequest er;
    er.model_path = model;
    er.text_path = "/t.txt";
    er.seq_len = 256;
    er.device = "cuda:1";
    const auto er2 = protocol::eval_request_from_json(protocol::to_json(er));
    QCOMPARE(er2.model_path, er.model_path);
    QCOMPARE(er2.seq_len, er.seq_len);
    QCOMPARE(er2.device, er.device);

    api::ExportResult xr;
    xr.path = "/out";
    xr.bytes = 123;
    xr.not_converted = {"blocks.0.mlp.down_proj: 172 inputs"};
    xr.warnings = {"activations"};
    const auto xr2 = protocol::export_result_from_json(protocol::to_json(xr));
    QCOMPARE(xr2.bytes, xr.bytes);
    QCOMPARE(xr2.not_converted, xr.not_converted);
    QCOMPARE(xr2.warnings, xr.warnings);

    const auto summary = api::describe_model(model);
    const auto summary2 = protocol::model_summary_from_json(Json::parse(protocol::to_json(summary).dump()));
    QCOMPARE(summary2.config.num_layers, summary.config.num_layers);
    QCOMPARE(summary2.config.hidden_size, summary.config.hidden_size);
    QCOMPARE(summary2.config.num_kv_heads, summary.config.num_kv_heads);
    QCOMPARE(summary2.parameters, summary.parameters);

    protocol::QuantizeRequest q;
    q.config = tessera_test::small_run(model, "/calib.txt", "tesseraq", 2);
    q.config.settings.set("tesseraq", "steps", 7);
    q.run_dir = "/runs/a";
    q.resume = true;
    const auto q2 = protocol::quantize_request_from_json(protocol::to_json(q));
    QCOMPARE(q2.config.identity_json(), q.config.identity_json());  // the run's fingerprint is kept
    QCOMPARE(q2.run_dir, q.run_dir);
    QVERIFY(q2.resume);

    api::LayerDetail d;
    d.block = 2;
    d.layer = "down_proj";
    d.code_change_counts = {1, 2, 3};
    d.scale_ratio = {1.0, 0.5};
    const auto d2 = protocol::layer_detail_from_json(protocol::to_json(d));
    QCOMPARE(d2.code_change_counts, d.code_change_counts);
    QCOMPARE(d2.scale_ratio, d.scale_ratio);

    const auto devices = api::list_devices();
    QVERIFY(!devices.empty());
    QCOMPARE(devices.front().id, std::string("cpu"));
    QVERIFY(devices.front().cores > 0 && devices.front().total_bytes > 0);
    QCOMPARE(protocol::devices_from_json(protocol::to_json(devices)).size(), devices.size());
  }

  void versionsAndMalformedLinesAreRefused() {
    protocol::check_hello(protocol::hello_message("worker"), "the worker");
    Json newer = protocol::hello_message("worker");
    newer["version"] = "3.0";
    TESSERA_VERIFY_THROWS_WITH(protocol::check_hello(newer, "the worker at gpu1"), "speaks worker protocol 3.0");
    TESSERA_VERIFY_THROWS_WITH(protocol::check_hello(newer, "the worker at gpu1"), "this side speaks 2.0");
    Json older = protocol::hello_message("worker");
    older["version"] = "1.0";  // the fields of run events changed in 2.0
    TESSERA_VERIFY_THROWS_WITH(protocol::check_hello(older, "the worker"), "speaks worker protocol 1.0");
    Json minor = protocol::hello_message("worker");
    minor["version"] = "2.7";  // a later minor version only adds optional fields
    protocol::check_hello(minor, "the worker");
    TESSERA_VERIFY_THROWS_WITH(protocol::check_hello(Json{{"type", "hello"}}, "/bin/cat"), "is not a Tessera worker");
    TESSERA_VERIFY_THROWS_WITH(protocol::parse_line("{\"type\": "), "not a JSON line");
    TESSERA_VERIFY_THROWS_WITH(protocol::parse_line("[1, 2]"), "without a message \"type\"");
    TESSERA_VERIFY_THROWS_WITH(rundir::run_event_from_json(Json{{"kind", "warp"}}), "unknown run event kind \"warp\"");
    TESSERA_VERIFY_THROWS_WITH(rundir::run_event_from_json(Json{{"kind", "step_loss"}, {"step", "seven"}}),
                               "field \"step\" has the wrong type");
    TESSERA_VERIFY_THROWS_WITH(protocol::export_request_from_json(Json{{"type", "export"}, {"run_dir", "/r"}}),
                               "has no field \"out\"");
    // RFC 4648's test vectors.
    for (const auto& [plain, encoded] : std::vector<std::pair<std::string, std::string>>{{"", ""},
                                                                                         {"f", "Zg=="},
                                                                                         {"fo", "Zm8="},
                                                                                         {"foo", "Zm9v"},
                                                                                         {"foob", "Zm9vYg=="},
                                                                                         {"fooba", "Zm9vYmE="},
                                                                                         {"foobar", "Zm9vYmFy"}})
      QCOMPARE(protocol::base64_encode(plain.data(), plain.size()), encoded);
  }

  void quantizeRecordsItsEventsAndLocksItsDirectory() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(calib, "text/tinystories/train-sample.txt");
    const auto dir = tessera_test::fresh_temp_dir("events") + "/run";
    auto c = tessera_test::small_run(model, calib, "rtn", 4);
    rundir::NullEventSink quiet;
    const auto report = api::quantize(c, dir, false, quiet);
    QVERIFY(report.peak_rss_bytes > 0);
    const rundir::RunDirectory rd(dir);
    auto lines = read_jsonl(rd.events_path());
    QVERIFY(lines.size() > 10);
    protocol::check_hello(lines.front(), "events.jsonl");
    QCOMPARE(lines.front()["role"].get<std::string>(), std::string("events"));
    std::map<std::string, int> kinds;
    for (std::size_t i = 1; i < lines.size(); ++i) {
      QCOMPARE(lines[i]["type"].get<std::string>(), std::string("event"));
      const auto e = rundir::run_event_from_json(lines[i]["event"]);
      ++kinds[rundir::run_event_kind_name(e.kind)];
      if (e.kind == rundir::RunEvent::Kind::Memory) QVERIFY(e.rss_bytes > 0);
    }
    QCOMPARE(kinds["run_started"], 1);
    QCOMPARE(kinds["block_finished"], 5);
    QCOMPARE(kinds["layer_stats"], 5 * 7);
    QCOMPARE(kinds["run_finished"], 1);
    QVERIFY(kinds["memory"] >= 5);
    QVERIFY(!rundir::RunDirectoryLock::is_held(rd));  // released when the run ended

    // A resumed run appends, after a hello of its own.
    api::quantize(c, dir, true, quiet);
    const auto resumed = read_jsonl(rd.events_path());
    int hellos = 0;
    for (const auto& l : resumed) hellos += l["type"] == "hello";
    QCOMPARE(hellos, 2);
    QVERIFY(resumed.size() > lines.size());

    // One writer at a time: while another holder has the lock, a run there is refused by name.
    {
      const rundir::RunDirectoryLock holder(rd);
      QVERIFY(rundir::RunDirectoryLock::is_held(rd));
      TESSERA_VERIFY_THROWS_WITH(api::quantize(c, dir, true, quiet), "is being written by another process (pid ");
    }
    QVERIFY(!rundir::RunDirectoryLock::is_held(rd));
  }

  void workerServesJobsOverPipes() {
    TESSERA_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
    TESSERA_REQUIRE_DATA(calib, "text/tinystories/train-sample.txt");
    TESSERA_REQUIRE_DATA(text, "text/tinystories/sample.txt");
    WorkerProcess worker;
    const Json hello = worker.receive();
    protocol::check_hello(hello, "tessera worker");
    QCOMPARE(hello["role"].get<std::string>(), std::string("worker"));
    worker.send(protocol::hello_message("client"));

    worker.send({{"type", "devices"}, {"job", 1}});
    auto lines = worker.until_end_of(1);
    QCOMPARE(lines.back()["type"].get<std::string>(), std::string("result"));
    const auto devices = protocol::devices_from_json(lines.back()["result"]);
    QCOMPARE(devices.front().id, std::string("cpu"));
    for (const auto& d : devices) std::printf("worker device: %s %s\n", d.id.c_str(), d.name.c_str());

    // A request the worker does not know is an error for that job; the worker goes on.
    worker.send({{"type", "transmogrify"}, {"job", 2}});
    lines = worker.until_end_of(2);
    QCOMPARE(lines.back()["type"].get<std::string>(), std::string("error"));
    QVERIFY(lines.back()["message"].get<std::string>().find("unknown request \"transmogrify\"") != std::string::npos);

    // A job id that is not a whole number: an error without a job, and the worker goes on.
    worker.send({{"type", "devices"}, {"job", "1"}});
    const Json bad_id = worker.receive();
    QCOMPARE(bad_id["type"].get<std::string>(), std::string("error"));
    QVERIFY(!bad_id.contains("job"));
    QVERIFY2(bad_id["message"].get<std::string>().find("\"job\" has the wrong type") != std::string::npos,
             bad_id.dump().c_str());

    // A real quantization with its evaluation: events, then the result with the perplexity.
    protocol::QuantizeRequest q;
    q.config = tessera_test::small_run(model, calib, "rtn", 4);
    q.run_dir = tessera_test::fresh_temp_dir("worker-pipe") + "/run";
    q.eval_text = text;
    Json request = protocol::to_json(q);
    request["type"] = "quantize";
    request["job"] = 3;
    worker.send(request);
    lines = worker.until_end_of(3);
    QCOMPARE(lines.back()["type"].get<std::string>(), std::string("result"));
    const auto result = protocol::quantize_result_from_json(lines.back()["result"]);
    QCOMPARE(result.report.blocks, std::int64_t(5));
    QVERIFY(result.perplexity > 5 && result.perplexity < 20);
    int events = 0, progress = 0;
    for (const auto& l : lines) {
      events += l["type"] == "event";
      progress += l["type"] == "progress";
    }
    QVERIFY(events > 5 * 7);
    QVERIFY(progress > 0);
    // Its evaluation is in its history too.
    const auto recorded = read_jsonl(rundir::RunDirectory(q.run_dir).events_path());
    const auto last = rundir::run_event_from_json(recorded.back()["event"]);
    QVERIFY(last.kind == rundir::RunEvent::Kind::Evaluated);
    QCOMPARE(last.perplexity, result.perplexity);
    QCOMPARE(last.text_path, text);
    // The same run read back through the worker: run_info and the recorded events.
    worker.send({{"type", "run_info"}, {"job", 4}, {"run_dir", q.run_dir}});
    lines = worker.until_end_of(4);
    QVERIFY(lines.back()["result"]["finished"].get<bool>());
    QVERIFY(lines.back()["result"]["has_events"].get<bool>());
    worker.send({{"type", "follow"}, {"job", 5}, {"run_dir", q.run_dir}});
    lines = worker.until_end_of(5);
    QCOMPARE(lines.back()["type"].get<std::string>(), std::string("result"));
    QVERIFY(lines.back()["result"]["finished"].get<bool>());
    QVERIFY(lines.back()["result"]["events"].get<std::int64_t>() >= events);
    QCOMPARE(worker.finish(), 0);

    // A client of another major version is refused, naming both versions, with exit status 3.
    WorkerProcess other;
    other.receive();
    Json newer = protocol::hello_message("client");
    newer["version"] = "3.0";
    other.send(newer);
    const Json refusal = other.receive();
    QCOMPARE(refusal["type"].get<std::string>(), std::string("error"));
    QVERIFY2(refusal["message"].get<std::string>().find("3.0") != std::string::npos &&
                 refusal["message"].get<std::string>().find("2.0") != std::string::npos,
             refusal.dump().c_str());
    QCOMPARE(other.finish(), 3);
  }
};

TESSERA_TEST_MAIN(TestWorkerProtocol, runEventsRoundTrip, jobPayloadsRoundTrip, versionsAndMalformedLinesAreRefused,
                  quantizeRecordsItsEventsAndLocksItsDirectory, workerServesJobsOverPipes)
#ifdef TESSERA_TEST_WITH_QT
#include "test_worker_protocol.moc"
#endif
