#pragma once
// The EventSink a run's worker thread reports to: it turns the core's RunEvents into the run's
// trace in the RunMetricsStore (step losses on the block axis, hardening, block losses, layer
// statistics, progress and ETA) and samples memory at most every 100 ms. Method messages go to
// the log. Called only on the worker thread; the store does the locking.
#include <chrono>
#include <memory>

#include "pipeline/run_events.h"
#include "run_metrics_store.h"

namespace tessera::workbench {

class RunEventRecorder : public pipeline::EventSink {
 public:
  RunEventRecorder(std::shared_ptr<widgets::RunMetricsStore> store, int run_id);
  void on_event(const pipeline::RunEvent& event) override;
  // Records the phase ("loading", "evaluating", ...) shown in the status bar.
  void setPhase(const std::string& phase);
  double elapsedSeconds() const;

 private:
  void sampleMemory(widgets::RunTrace& trace, double gpu_bytes, bool force);

  std::shared_ptr<widgets::RunMetricsStore> store_;
  int run_id_;
  std::chrono::steady_clock::time_point start_;
  double last_sample_ = -1;
  double last_gpu_bytes_ = 0;
};

// Resident memory of this process in bytes (Linux /proc/self/statm; 0 where unavailable).
double residentMemoryBytes();

}  // namespace tessera::workbench
