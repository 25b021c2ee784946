#include "metrics_store.h"

namespace tessera::widgets {

void MetricsStore::append(const std::string& series, double x, double y) {
  std::lock_guard<std::mutex> lock(mutex_);
  series_[series].push_back({x, y});
  ++revision_;
}

void MetricsStore::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  series_.clear();
  ++generation_;
  ++revision_;
}

std::uint64_t MetricsStore::revision() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return revision_;
}

MetricsStore::Slice MetricsStore::read(const std::string& series, std::size_t from) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Slice slice;
  slice.generation = generation_;
  const auto it = series_.find(series);
  if (it != series_.end() && from < it->second.size())
    slice.points.assign(it->second.begin() + static_cast<std::ptrdiff_t>(from), it->second.end());
  return slice;
}

}  // namespace tessera::widgets
