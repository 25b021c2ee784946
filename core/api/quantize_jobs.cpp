#include "api/quantize_jobs.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "api/device_memory.h"
#include "pipeline/quantization_run.h"
#include "rundir/event_log.h"
#include "runtime/torch_runtime.h"

namespace tessera::api {

namespace {

using rundir::RunEvent;

// Passes every event on, adds Memory events (at most every 100 ms during step losses, at every
// other event) and appends both to the run directory's events.jsonl, so that a run started from a
// shell can be followed, or replayed, by the workbench. The log is opened at RunStarted, when the
// run holds its directory's lock; earlier events wait for it.
class RecordingSink : public rundir::EventSink {
 public:
  RecordingSink(rundir::EventSink& inner, const std::string& run_dir, std::string device)
      : inner_(inner),
        log_(rundir::RunDirectory(run_dir)),
        device_(std::move(device)),
        start_(std::chrono::steady_clock::now()) {}

  void on_event(const RunEvent& e) override {
    inner_.on_event(e);
    record(e);
    if (e.kind == RunEvent::Kind::RunStarted) {
      started_ = true;
      for (const auto& p : pending_) log_.append(p);
      pending_.clear();
    }
    sample_memory(e.kind != RunEvent::Kind::StepLoss && e.kind != RunEvent::Kind::Log);
  }

  double peak_gpu_bytes() const { return peak_gpu_; }
  double peak_rss_bytes() const { return peak_rss_; }

 private:
  void record(const RunEvent& e) {
    if (started_)
      log_.append(e);
    else
      pending_.push_back(e);
  }

  void sample_memory(bool force) {
    const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (!force && now - last_sample_ < 0.1) return;
    last_sample_ = now;
    RunEvent m;
    m.kind = RunEvent::Kind::Memory;
    m.elapsed_seconds = now;
    m.gpu_memory_bytes = device_memory_in_use_bytes(device_);
    m.rss_bytes = resident_memory_bytes();
    peak_gpu_ = std::max(peak_gpu_, m.gpu_memory_bytes);
    peak_rss_ = std::max(peak_rss_, m.rss_bytes);
    inner_.on_event(m);
    record(m);
  }

  rundir::EventSink& inner_;
  rundir::RunEventLog log_;
  std::string device_;
  std::chrono::steady_clock::time_point start_;
  bool started_ = false;
  std::vector<RunEvent> pending_;
  double last_sample_ = -1;
  double peak_gpu_ = 0, peak_rss_ = 0;
};

}  // namespace

QuantizeReport quantize(const pipeline::RunConfig& config, const std::string& run_dir, bool resume,
                        rundir::EventSink& events, const StopToken& stop) {
  RecordingSink recorder(events, run_dir, config.device);
  // The allocator's own peak as well: the events sample the bytes in use only now and then.
  const bool cuda = config.device.rfind("cuda", 0) == 0;
  if (cuda) {
    try {
      runtime::reset_peak_gpu_memory(runtime::parse_device(config.device));
    } catch (const std::exception&) {  // the run reports a device it cannot use
    }
  }
  const auto s = pipeline::run_quantization(config, run_dir, resume, recorder, stop);
  QuantizeReport r;
  r.run_dir = s.run_dir;
  r.blocks = s.blocks;
  r.restored_blocks = s.restored_blocks;
  r.seconds = s.seconds;
  r.calibration_sha256 = s.calibration_sha256;
  r.placement = s.placement;
  r.layers = s.layers;
  r.loss_rtn = s.loss_rtn;
  r.loss = s.loss;
  r.peak_gpu_bytes = recorder.peak_gpu_bytes();
  if (cuda) {
    try {
      const auto device = runtime::parse_device(config.device);
      r.peak_gpu_bytes = std::max(r.peak_gpu_bytes, runtime::peak_gpu_memory_gib(device) * 1024.0 * 1024.0 * 1024.0);
      const auto peaks = runtime::gpu_memory_peaks(device);
      r.peak_gpu_reserved_bytes = peaks.peak_reserved_bytes;
      r.gpu_outside_allocator_bytes = peaks.outside_allocator_bytes;
    } catch (const std::exception&) {
    }
  }
  r.peak_rss_bytes = recorder.peak_rss_bytes();
  return r;
}

}  // namespace tessera::api
