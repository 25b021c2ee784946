#pragma once
// Running perplexity against the number of windows evaluated. The evaluation's progress appends
// points to a MetricsStore; a GUI-thread timer (40 ms) copies the new points into the graph and
// repaints at most once per tick, however fast the points come.
#include <qcustomplot.h>

#include <QTimer>
#include <cstdint>
#include <memory>

#include "metrics_store.h"

namespace tessera::widgets {

class PerplexityPlot : public QCustomPlot {
  Q_OBJECT

 public:
  // The series this plot reads from the store.
  static constexpr const char* kSeries = "perplexity";

  explicit PerplexityPlot(std::shared_ptr<const MetricsStore> store, QWidget* parent = nullptr);

  void setTotalWindows(std::int64_t total);  // fixes the x range while a run is going
  void showFinal(double perplexity);         // marks the final value with a dashed line
  void showStopped(const QString& why);      // a failed or cancelled run: says so above the plot
  int pointCount() const;

 public slots:
  void refresh();  // reads the store now; the timer calls it every tick

 private:
  void rescale();

  std::shared_ptr<const MetricsStore> store_;
  QTimer timer_;
  QCPGraph* graph_ = nullptr;
  QCPItemStraightLine* final_line_ = nullptr;
  QCPTextElement* subtitle_ = nullptr;
  QCPItemText* placeholder_ = nullptr;
  std::uint64_t seen_revision_ = 0;
  std::uint64_t seen_generation_ = 0;
  std::size_t seen_points_ = 0;
  std::int64_t total_windows_ = 0;
  bool stopped_ = false;  // keeps showStopped's text when late points arrive
};

}  // namespace tessera::widgets
