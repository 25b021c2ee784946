#pragma once
// Numbers that a job produces and the GUI plots. They are appended under a mutex, never into a
// widget; plots poll the store from a coalescing timer (see PerplexityPlot), so a
// job that reports thousands of points a second costs the GUI one repaint per tick.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace tessera::widgets {

struct MetricPoint {
  double x = 0;
  double y = 0;
};

class MetricsStore {
 public:
  // Thread-safe.
  void append(const std::string& series, double x, double y);
  void clear();  // drops every series; readers notice through the changed generation
  // Increases on every change, so that a reader can skip ticks where nothing happened.
  std::uint64_t revision() const;

  // Points of `series` from index `from` on, and the generation they belong to. A reader keeps
  // the count it has seen; when the generation differs from its own, it starts again from 0.
  struct Slice {
    std::uint64_t generation = 0;
    std::vector<MetricPoint> points;
  };
  Slice read(const std::string& series, std::size_t from) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<MetricPoint>> series_;
  std::uint64_t generation_ = 0;  // bumped by clear()
  std::uint64_t revision_ = 0;    // bumped by every change
};

}  // namespace tessera::widgets
