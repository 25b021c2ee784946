#pragma once
// The live numbers of every run of the session, keyed by run id. The worker's events are written
// through update() under a mutex, never into a widget; plots poll revision() from their
// coalescing timers and copy their runs' traces only when some run changed, so thousands of
// events a second cost the GUI one rebuild per tick.
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "run_trace.h"

namespace tessera::widgets {

class RunMetricsStore {
 public:
  // All thread-safe. update() creates the run's trace if needed; `edit` runs under the lock, so
  // it must be short and must not call back into the store.
  void update(int run_id, const std::function<void(RunTrace&)>& edit);
  void set(int run_id, RunTrace trace);  // replaces (a reopened session)
  void clear();

  std::uint64_t revision() const;    // increases on every change
  RunTrace trace(int run_id) const;  // a copy; empty when unknown
  // The run's progress and how many blocks it finished, without copying its curves (the status bar
  // asks ten times a second).
  RunProgress progress(int run_id, std::size_t* blocks_done) const;
  std::size_t layerCount() const;  // layer statistics over all runs (changes when a block ends)

 private:
  mutable std::mutex mutex_;
  std::map<int, RunTrace> traces_;
  std::uint64_t revision_ = 0;
};

}  // namespace tessera::widgets
