#include "run_metrics_store.h"

#include <algorithm>

namespace tessera::widgets {

double RunTrace::peakGpuBytes() const {
  double peak = 0;
  for (const auto& m : memory) peak = std::max(peak, m.gpu_bytes);
  return peak;
}

double RunTrace::peakRssBytes() const {
  double peak = 0;
  for (const auto& m : memory) peak = std::max(peak, m.rss_bytes);
  return peak;
}

void RunMetricsStore::update(int run_id, const std::function<void(RunTrace&)>& edit) {
  std::lock_guard<std::mutex> lock(mutex_);
  edit(traces_[run_id]);
  ++revision_;
}

void RunMetricsStore::set(int run_id, RunTrace trace) {
  std::lock_guard<std::mutex> lock(mutex_);
  traces_[run_id] = std::move(trace);
  ++revision_;
}

void RunMetricsStore::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  traces_.clear();
  ++revision_;
}

std::uint64_t RunMetricsStore::revision() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return revision_;
}

RunTrace RunMetricsStore::trace(int run_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = traces_.find(run_id);
  return it == traces_.end() ? RunTrace() : it->second;
}

RunProgress RunMetricsStore::progress(int run_id, std::size_t* blocks_done) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = traces_.find(run_id);
  if (blocks_done) *blocks_done = it == traces_.end() ? 0 : it->second.blocks.size();
  return it == traces_.end() ? RunProgress() : it->second.progress;
}

std::size_t RunMetricsStore::layerCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t n = 0;
  for (const auto& [id, trace] : traces_) n += trace.layers.size();
  return n;
}

}  // namespace tessera::widgets
