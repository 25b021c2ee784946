#pragma once
// The EventSink a run's worker thread reports to: it turns the core's RunEvents into the run's
// trace in the RunMetricsStore (step losses on the block axis, hardening, block losses, layer
// statistics, progress and ETA) and samples memory (resident memory of the process, and the memory
// allocated on the run's GPU) at most every 100 ms during step losses and at every other event. Method messages go to the log. Called only
// on the worker thread; the store does the locking.
#include <chrono>
#include <memory>
#include <string>

#include "pipeline/run_events.h"
#include "run_metrics_store.h"

namespace tessera::workbench {

class RunEventRecorder : public pipeline::EventSink {
 public:
  RunEventRecorder(std::shared_ptr<widgets::RunMetricsStore> store, int run_id, std::string device);
  void on_event(const pipeline::RunEvent& event) override;
  // Records the phase ("loading", "evaluating", ...) shown in the status bar.
  void setPhase(const std::string& phase);
  double elapsedSeconds() const;

 private:
  void sampleMemory(widgets::RunTrace& trace, bool force);

  std::shared_ptr<widgets::RunMetricsStore> store_;
  int run_id_;
  std::chrono::steady_clock::time_point start_;
  std::string device_;
  double last_sample_ = -1;
};

// Resident memory of this process in bytes (Linux /proc/self/statm; 0 where unavailable).
double residentMemoryBytes();

}  // namespace tessera::workbench
