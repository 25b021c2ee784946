#pragma once
// Turns the RunEvents a worker reports (or an events.jsonl replays) into the run's trace in the
// RunMetricsStore: step losses on the block axis, hardening, block losses, layer statistics,
// progress and ETA, and the memory samples the worker takes (its resident memory and the memory
// allocated on the run's GPU). Method messages go to the log. The store does the locking.
#include <memory>
#include <string>

#include "run_metrics_store.h"
#include "rundir/run_event.h"

namespace tessera::workbench {

class RunEventRecorder : public rundir::EventSink {
 public:
  // Starts the run's curves over (a restarted or resumed run draws them anew).
  RunEventRecorder(std::shared_ptr<widgets::RunMetricsStore> store, int run_id);
  void on_event(const rundir::RunEvent& event) override;
  // Records the phase ("loading", "evaluating", ...) shown in the status bar.
  void setPhase(const std::string& phase);

 private:
  std::shared_ptr<widgets::RunMetricsStore> store_;
  int run_id_;
};

}  // namespace tessera::workbench
