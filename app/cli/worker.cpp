#include "cli/worker.h"

#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/device_memory.h"
#include "api/export_jobs.h"
#include "api/layer_detail.h"
#include "api/model_jobs.h"
#include "api/quantize_jobs.h"
#include "pipeline/quantization_run.h"
#include "protocol/worker_protocol.h"
#include "rundir/event_json.h"
#include "rundir/event_log.h"
#include "rundir/run_directory.h"
#include "rundir/run_manifest.h"
#include "runtime/error_message.h"
#include "util/error.h"
#include "util/log.h"
#include "util/stop_token.h"

namespace tessera::cli {

namespace {

using protocol::Json;

// Protocol lines go to a private copy of the process's stdout; descriptor 1 itself is pointed at
// stderr, so that nothing a library prints can corrupt the protocol.
class LineWriter {
 public:
  LineWriter() {
    const int fd = ::dup(STDOUT_FILENO);
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    out_ = ::fdopen(fd, "w");
    if (!out_) throw Error("tessera worker: cannot open its output");
  }
  ~LineWriter() { std::fclose(out_); }

  void send(const Json& message) {
    // Invalid UTF-8 (a file name from a hostile file, say) is replaced rather than thrown on.
    const std::string text = message.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    std::lock_guard<std::mutex> lock(mutex_);
    std::fwrite(text.data(), 1, text.size(), out_);
    std::fflush(out_);
  }

 private:
  std::mutex mutex_;
  std::FILE* out_ = nullptr;
};

// The core's log lines as "log" messages (they also still go to stderr).
class ProtocolLogSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ProtocolLogSink(LineWriter& out) : out_(out) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    out_.send({{"type", "log"},
               {"level", std::string(level.data(), level.size())},
               {"message", std::string(msg.payload.data(), msg.payload.size())}});
  }
  void flush_() override {}

 private:
  LineWriter& out_;
};

struct Job {
  std::thread thread;
  StopToken stop;
  // Each pause request has a number; "paused" is sent once per number, and only while that pause
  // is still requested (a resume may come before the job reached it).
  std::int64_t pause_generation = 0, reported_generation = 0;
  std::atomic<bool> done{false};
  // Step-loss events sent so far, and their count when the last pause request arrived: "paused"
  // reports both, so a client can see that the job stopped within one step of the request.
  std::atomic<std::int64_t> step_events{0};
  std::int64_t step_events_at_pause_request = 0;
  std::atomic<std::int64_t> step_events_at_cancel_request{0};
};

// A job's RunEvents as "event" messages.
class JobEventSink : public rundir::EventSink {
 public:
  JobEventSink(LineWriter& out, std::int64_t id, Job& job) : out_(out), id_(id), job_(job) {}
  void on_event(const rundir::RunEvent& e) override {
    out_.send(protocol::job_message("event", id_, {{"event", rundir::to_json(e)}}));
    if (e.kind == rundir::RunEvent::Kind::StepLoss) ++job_.step_events;
  }

 private:
  LineWriter& out_;
  std::int64_t id_;
  Job& job_;
};

class WorkerServer {
 public:
  explicit WorkerServer(LineWriter& out) : out_(out) {}

  int serve() {
    out_.send(protocol::hello_message("worker"));
    monitor_ = std::thread([this] { monitor(); });
    int status = 0;
    bool greeted = false;
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      Json message;
      try {
        message = protocol::parse_line(line);
        if (!greeted) {
          protocol::check_hello(message, "the client");
          greeted = true;
          continue;
        }
        if (message["type"] == "shutdown") break;
        handle(message);
      } catch (const std::exception& e) {
        const bool has_job = message.is_object() && message.contains("job") && message["job"].is_number_integer();
        out_.send(
            protocol::job_message("error", has_job ? message["job"].get<std::int64_t>() : -1, {{"message", e.what()}}));
        if (!greeted) {
          status = 3;
          break;
        }
      }
    }
    // stdin closed (the client quit, or its SSH connection dropped) or shutdown: nothing more can
    // be reported, so running jobs are cancelled; a quantization resumes from its last block.
    stop_all();
    return status;
  }

 private:
  void handle(const Json& m) {
    const std::string type = m["type"];
    const auto id = protocol::field<std::int64_t>(m, "job");
    if (type == "cancel" || type == "pause" || type == "resume") {
      std::lock_guard<std::mutex> lock(jobs_mutex_);
      const auto it = jobs_.find(id);
      if (it == jobs_.end()) throw protocol::ProtocolError("\"" + type + "\": no running job " + std::to_string(id));
      Job& job = *it->second;
      if (job.done) return;  // it has sent its result already: nothing to steer
      if (type == "cancel") {
        job.step_events_at_cancel_request = job.step_events.load();
        job.stop.request_stop();
      } else if (type == "pause") {
        job.step_events_at_pause_request = job.step_events;
        ++job.pause_generation;
        job.stop.request_pause();  // "paused" follows once the job waits at its next step
      } else {
        job.stop.resume();
        job.reported_generation = job.pause_generation;  // this pause needs no report any more
        out_.send(protocol::job_message("resumed", id));
      }
      return;
    }
    static const char* kJobs[] = {"quantize",   "evaluate", "export",   "export_formats", "layer_detail",
                                  "model_info", "devices",  "run_info", "follow",         "fetch"};
    bool known = false;
    for (const char* k : kJobs) known = known || type == k;
    if (!known) throw protocol::ProtocolError("unknown request \"" + type + "\"");
    std::lock_guard<std::mutex> lock(jobs_mutex_);
    if (jobs_.count(id)) throw protocol::ProtocolError("job id " + std::to_string(id) + " is already in use");
    auto job = std::make_unique<Job>();
    Job* raw = job.get();
    job->thread = std::thread([this, m, id, type, raw] {
      out_.send(protocol::job_message("started", id, {{"request", type}}));
      try {
        out_.send(protocol::job_message("result", id, {{"result", run_job(type, m, id, *raw)}}));
      } catch (const Cancelled&) {
        out_.send(protocol::job_message("cancelled", id,
                                        {{"step_events_at_request", raw->step_events_at_cancel_request.load()},
                                         {"step_events", raw->step_events.load()}}));
      } catch (const std::exception& e) {
        out_.send(protocol::job_message("error", id, {{"message", runtime::error_message(e)}}));
      }
      raw->done = true;
    });
    jobs_[id] = std::move(job);
  }

  Json run_job(const std::string& type, const Json& m, std::int64_t id, Job& job) {
    const StopToken& stop = job.stop;
    auto progress = [&](const std::string& stage, std::int64_t done, std::int64_t total, double value) {
      out_.send(protocol::job_message("progress", id,
                                      {{"stage", stage}, {"done", done}, {"total", total}, {"value", value}}));
    };
    if (type == "quantize") {
      const auto request = protocol::quantize_request_from_json(m);
      JobEventSink events(out_, id, job);
      protocol::QuantizeResult result;
      result.report = api::quantize(request.config, request.run_dir, request.resume, events, stop);
      if (!request.eval_text.empty()) {
        api::EvalRequest eval;
        eval.run_dir = result.report.run_dir;
        eval.text_path = request.eval_text;
        eval.device = request.config.device;
        eval.batch_size = request.config.batch_size;
        result.perplexity = api::evaluate_perplexity(
                                eval,
                                [&](const api::EvalProgress& p) {
                                  progress("evaluating", p.windows_done, p.windows_total, p.running_perplexity);
                                },
                                stop)
                                .perplexity;
      }
      return protocol::to_json(result);
    }
    if (type == "evaluate") {
      const auto request = protocol::eval_request_from_json(protocol::field<Json>(m, "request"));
      return protocol::to_json(api::evaluate_perplexity(
          request,
          [&](const api::EvalProgress& p) { progress(p.stage, p.windows_done, p.windows_total, p.running_perplexity); },
          stop));
    }
    if (type == "export") {
      const auto request = protocol::export_request_from_json(protocol::field<Json>(m, "request"));
      return protocol::to_json(api::export_run(
          request, [&](const api::ExportProgress& p) { progress(p.stage, p.done, p.total, 0); }, stop));
    }
    if (type == "export_formats")
      return protocol::to_json(api::export_formats_for_run(protocol::field<std::string>(m, "run_dir")));
    if (type == "layer_detail")
      return protocol::to_json(api::layer_detail(protocol::field<std::string>(m, "run_dir"),
                                                 protocol::field<std::int64_t>(m, "block"),
                                                 protocol::field<std::string>(m, "layer")));
    if (type == "model_info") return protocol::to_json(api::describe_model(protocol::field<std::string>(m, "model")));
    if (type == "devices") return protocol::to_json(api::list_devices());
    if (type == "run_info") return run_info(protocol::field<std::string>(m, "run_dir"));
    if (type == "fetch") return fetch(protocol::field<std::string>(m, "path"), id, stop);
    return follow(protocol::field<std::string>(m, "run_dir"), id, stop);
  }

  // Sends a file, or every file below a folder, as "data" messages of base64 chunks (an export
  // copied back to the workbench's machine); the result lists the files and their sizes.
  Json fetch(const std::string& path, std::int64_t id, const StopToken& stop) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path root(path);
    if (!fs::exists(root, ec)) throw Error(path + " does not exist on the worker's host");
    std::vector<std::pair<fs::path, std::string>> files;  // absolute, relative ("" for a single file)
    if (fs::is_directory(root, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(root, ec))
        if (e.is_regular_file()) files.emplace_back(e.path(), fs::relative(e.path(), root).generic_string());
      if (ec) throw Error("cannot list " + path + ": " + ec.message());
    } else {
      files.emplace_back(root, "");
    }
    std::int64_t total = 0, sent = 0;
    for (const auto& f : files) total += static_cast<std::int64_t>(fs::file_size(f.first, ec));
    Json listed = Json::array();
    constexpr std::size_t kChunk = 1 << 20;  // 1 MiB of data, 1.4 MB on the wire
    std::vector<char> buffer(kChunk);
    for (const auto& [absolute, relative] : files) {
      std::ifstream in(absolute, std::ios::binary);
      if (!in) throw Error("cannot read " + absolute.string());
      std::int64_t offset = 0;
      do {
        stop.throw_if_stopped();
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        const auto n = static_cast<std::size_t>(in.gcount());
        out_.send(protocol::job_message(
            "data", id, {{"file", relative}, {"offset", offset}, {"data", protocol::base64_encode(buffer.data(), n)}}));
        offset += static_cast<std::int64_t>(n);
        sent += static_cast<std::int64_t>(n);
        out_.send(protocol::job_message("progress", id,
                                        {{"stage", "copying"}, {"done", sent}, {"total", total}, {"value", 0.0}}));
      } while (in);
      listed.push_back({{"file", relative}, {"bytes", offset}});
    }
    return {{"path", path}, {"files", listed}, {"bytes", sent}};
  }

  // What run.json says of a run, and whether it can be followed (events.jsonl) or is being written.
  static Json run_info(const std::string& run_dir) {
    const rundir::RunDirectory dir(run_dir);
    const auto manifest = rundir::read_manifest(dir);
    return {{"run_dir", run_dir},
            {"config", manifest.config},
            {"calibration_sha256", manifest.fingerprint.calibration_sha256},
            {"blocks", manifest.blocks},
            {"finished", manifest.finished},
            {"seconds", manifest.seconds.value_or(0.0)},
            {"has_events", dir.has_events()},
            {"being_written", rundir::RunDirectoryLock::is_held(dir)}};
  }

  // Sends the events of a run directory's events.jsonl, then those appended while the run's
  // writer holds its lock; ends when the writer is gone and the file is read to its end.
  Json follow(const std::string& run_dir, std::int64_t id, const StopToken& stop) {
    const rundir::RunDirectory dir(run_dir);
    // A run that has just started writes events.jsonl a moment after taking its lock.
    while (!dir.has_events() && rundir::RunDirectoryLock::is_held(dir)) {
      stop.throw_if_stopped();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    rundir::RunEventReader reader(dir);
    std::int64_t events = 0;
    for (;;) {
      const bool writer_alive = rundir::RunDirectoryLock::is_held(dir);
      const auto appended = reader.read_appended();
      for (const auto& e : appended) out_.send(protocol::job_message("event", id, {{"event", rundir::to_json(e)}}));
      events += static_cast<std::int64_t>(appended.size());
      if (appended.empty() && !writer_alive) break;
      stop.throw_if_stopped();
      if (appended.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    bool finished = false;
    double seconds = 0;
    try {
      const auto manifest = rundir::read_manifest(dir);
      finished = manifest.finished;
      seconds = manifest.seconds.value_or(0.0);
    } catch (const std::exception&) {
      // An unreadable manifest only means "not finished"; the events were sent.
    }
    return {{"run_dir", run_dir}, {"events", events}, {"finished", finished}, {"seconds", seconds}};
  }

  // Reports pauses (the job's thread is waiting at its step) and joins finished jobs.
  void monitor() {
    while (!stopping_) {
      {
        std::lock_guard<std::mutex> lock(jobs_mutex_);
        for (auto it = jobs_.begin(); it != jobs_.end();) {
          Job& job = *it->second;
          if (job.done) {
            job.thread.join();
            it = jobs_.erase(it);
            continue;
          }
          if (job.stop.is_paused() && job.stop.pause_requested() && job.reported_generation != job.pause_generation) {
            job.reported_generation = job.pause_generation;
            out_.send(protocol::job_message("paused", it->first,
                                            {{"step_events_at_request", job.step_events_at_pause_request},
                                             {"step_events", job.step_events.load()}}));
          }
          ++it;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void stop_all() {
    {
      std::lock_guard<std::mutex> lock(jobs_mutex_);
      for (auto& [id, job] : jobs_) job->stop.request_stop();
    }
    stopping_ = true;
    monitor_.join();
    std::lock_guard<std::mutex> lock(jobs_mutex_);
    for (auto& [id, job] : jobs_) job->thread.join();
    jobs_.clear();
  }

  LineWriter& out_;
  std::mutex jobs_mutex_;
  std::map<std::int64_t, std::unique_ptr<Job>> jobs_;
  std::thread monitor_;
  std::atomic<bool> stopping_{false};
};

}  // namespace

int run_worker() {
  // A client that went away makes writes fail (EPIPE) instead of killing the worker: it then sees
  // its input close and cancels its jobs as usual.
  std::signal(SIGPIPE, SIG_IGN);
  LineWriter out;
  auto sink = std::make_shared<ProtocolLogSink>(out);
  logger()->sinks().push_back(sink);
  struct Unhook {
    std::shared_ptr<spdlog::sinks::sink> sink;
    ~Unhook() {
      auto& sinks = logger()->sinks();
      sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
    }
  } unhook{sink};
  WorkerServer server(out);
  return server.serve();
}

}  // namespace tessera::cli
