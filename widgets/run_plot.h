#pragma once
// The common frame of the workbench's run plots (loss, hardening, memory): a title, a subtitle
// line above the axis rect, a placeholder while there is nothing to draw, and the coalescing
// timer. The workers' events only go into the RunMetricsStore; every 40 ms the timer compares the
// store's revision with the one drawn and rebuilds the plot from copies of the shown runs' traces,
// so the repaint rate is bounded by the timer however fast events arrive.
#include <qcustomplot.h>

#include <QColor>
#include <QString>
#include <QTimer>
#include <cstdint>
#include <memory>
#include <vector>

#include "run_metrics_store.h"

namespace tessera::widgets {

// A run as the plots show it: which trace, under what name, in which colour.
struct PlottedRun {
  int id = 0;
  QString label;
  QColor color;
};

class RunPlot : public QCustomPlot {
  Q_OBJECT

 public:
  static constexpr int kTickMs = 40;

  RunPlot(std::shared_ptr<const RunMetricsStore> store, const QString& title, QWidget* parent = nullptr);

  // The runs to draw, overlaid in this order (the comparison table's selection).
  void setRuns(const std::vector<PlottedRun>& runs);
  // How many times the plot was rebuilt from the store (for tests of the coalescing).
  int rebuildCount() const { return rebuilds_; }

 public slots:
  void refresh();  // rebuilds now if the store or the run list changed; the timer calls it

 protected:
  struct Shown {
    PlottedRun run;
    RunTrace trace;
  };
  // Draws `shown` from scratch (graphs and items were cleared); returns false when there was
  // nothing to draw, so that the placeholder stays.
  virtual bool rebuild(const std::vector<Shown>& shown) = 0;
  // QCPTextElement does not wrap and the layout breaks when it is wider than the plot: keep
  // subtitles under about 60 characters (the plots are ~450 px wide in a 1280 px window).
  void setSubtitle(const QString& text);
  void setPlaceholder(const QString& text);
  QPen runPen(const PlottedRun& run, double width = 1.6, Qt::PenStyle style = Qt::SolidLine) const;

 private:
  void placeLegend();
  std::shared_ptr<const RunMetricsStore> store_;
  std::vector<PlottedRun> runs_;
  QTimer timer_;
  QCPTextElement* subtitle_ = nullptr;
  QCPItemText* placeholder_ = nullptr;
  std::uint64_t drawn_revision_ = 0;
  bool dirty_ = true;
  int rebuilds_ = 0;
};

// Distinct colours for methods, so that a method keeps its colour across plots and sessions.
QColor methodColor(const QString& method, int variant = 0);

}  // namespace tessera::widgets
