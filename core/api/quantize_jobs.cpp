#include "api/quantize_jobs.h"

#include <chrono>
#include <cstdio>
#include <vector>

#include "api/device_memory.h"
#include "pipeline/quantization_run.h"
#include "pipeline/run_directory.h"
#include "protocol/worker_protocol.h"
#include "util/log.h"

namespace tessera::api {

namespace {

using pipeline::RunEvent;

// Passes every event on, adds Memory events (at most every 100 ms during step losses, at every
// other event) and appends both to the run directory's events.jsonl as worker-protocol lines, so
// that a run started from a shell can be followed, or replayed, by the workbench. The file is
// opened at RunStarted, when the run holds its directory's lock; earlier events wait for it.
class RecordingSink : public pipeline::EventSink {
 public:
  RecordingSink(pipeline::EventSink& inner, std::string run_dir, std::string device)
      : inner_(inner), dir_(std::move(run_dir)), device_(std::move(device)), start_(std::chrono::steady_clock::now()) {}
  ~RecordingSink() override {
    if (file_) std::fclose(file_);
  }

  void on_event(const RunEvent& e) override {
    inner_.on_event(e);
    if (e.kind == RunEvent::Kind::RunStarted) open_file();
    write(protocol::to_json(e));
    sample_memory(e.kind != RunEvent::Kind::StepLoss && e.kind != RunEvent::Kind::Log);
  }

  void sample_memory(bool force) {
    const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (!force && now - last_sample_ < 0.1) return;
    last_sample_ = now;
    RunEvent m;
    m.kind = RunEvent::Kind::Memory;
    m.seconds = now;
    m.gpu_memory_bytes = device_memory_in_use_bytes(device_);
    m.rss_bytes = resident_memory_bytes();
    peak_gpu_ = std::max(peak_gpu_, m.gpu_memory_bytes);
    peak_rss_ = std::max(peak_rss_, m.rss_bytes);
    inner_.on_event(m);
    write(protocol::to_json(m));
  }

 private:
  void open_file() {
    if (file_) return;
    const std::string path = pipeline::RunDirectory(dir_).events_path();
    file_ = std::fopen(path.c_str(), "a");
    if (!file_) {
      logger()->warn("cannot append to {}; the run goes on without an event log", path);
      failed_ = true;
      pending_.clear();
      return;
    }
    write_line(protocol::hello_message("events"));
    for (const auto& line : pending_) write_line(line);
    pending_.clear();
  }

  void write(protocol::Json event) {
    protocol::Json line = {{"type", "event"}, {"event", std::move(event)}};
    if (file_)
      write_line(line);
    else if (!failed_)
      pending_.push_back(std::move(line));
  }

  void write_line(const protocol::Json& line) {
    const std::string text = line.dump() + "\n";
    // Flushed per line so that a follower sees the run live; a full disk loses log lines only.
    if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0) {
      logger()->warn("cannot write the event log of {} (disk full?); the run goes on without it", dir_);
      std::fclose(file_);
      file_ = nullptr;
      failed_ = true;
    }
  }

  pipeline::EventSink& inner_;
  std::string dir_, device_;
  std::chrono::steady_clock::time_point start_;
  std::FILE* file_ = nullptr;
  bool failed_ = false;
  std::vector<protocol::Json> pending_;
  double last_sample_ = -1;
  double peak_gpu_ = 0, peak_rss_ = 0;

 public:
  double peak_gpu_bytes() const { return peak_gpu_; }
  double peak_rss_bytes() const { return peak_rss_; }
};

}  // namespace

QuantizeReport quantize(const pipeline::RunConfig& config, const std::string& run_dir, bool resume,
                        pipeline::EventSink& events, const StopToken& stop) {
  RecordingSink recorder(events, run_dir, config.device);
  const auto s = pipeline::run_quantization(config, run_dir, resume, recorder, stop);
  QuantizeReport r;
  r.run_dir = s.run_dir;
  r.blocks = s.blocks;
  r.restored_blocks = s.restored_blocks;
  r.seconds = s.seconds;
  r.calibration_sha256 = s.calibration_sha256;
  r.placement = s.placement;
  r.layers = s.layers;
  r.loss_rtn = s.loss_before;
  r.loss = s.loss_after;
  r.peak_gpu_bytes = recorder.peak_gpu_bytes();
  r.peak_rss_bytes = recorder.peak_rss_bytes();
  return r;
}

}  // namespace tessera::api
