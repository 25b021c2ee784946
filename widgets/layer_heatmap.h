#pragma once
// Where the quantization error sits: a blocks x {q,k,v,o,gate,up,down} heatmap of one per-layer
// metric of a run, or of the difference between two runs (the second against the first). Hovering
// a cell shows its exact values; clicking it emits cellClicked for the layer's detail view.
#include <qcustomplot.h>

#include <QString>
#include <vector>

#include "eval/layer_stats_record.h"

namespace tessera::widgets {

class LayerHeatmap : public QCustomPlot {
  Q_OBJECT

 public:
  enum class Metric { OutputMse, RelWeightError, FlipRatio, DstSpread };
  static QString metricName(Metric metric);
  static double metricValue(const eval::LayerStats& s, Metric metric);
  // The Linear names in the heatmap's column order, as the run's stats name them.
  static const std::vector<QString>& layerNames();

  explicit LayerHeatmap(QWidget* parent = nullptr);

  // One run's stats (blocks may still be arriving), or a diff: `compare` against `base`.
  void showRun(const QString& label, const std::vector<eval::LayerStats>& stats, std::int64_t blocks);
  void showDiff(const QString& base_label, const std::vector<eval::LayerStats>& base, const QString& label,
                const std::vector<eval::LayerStats>& compare, std::int64_t blocks);
  void setMetric(Metric metric);
  Metric metric() const { return metric_; }
  // The text the tooltip shows for a cell, "" outside the data (tests use it too).
  QString cellText(std::int64_t block, int layer_index) const;
  bool isDiff() const { return diff_; }
  int cellsWithData() const;

 signals:
  void cellClicked(std::int64_t block, const QString& layer);

 protected:
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;

 private:
  void rebuild();
  bool cellAt(const QPoint& pos, std::int64_t& block, int& layer) const;
  const eval::LayerStats* find(const std::vector<eval::LayerStats>& stats, std::int64_t block, int layer) const;

  QCPColorMap* map_ = nullptr;
  QCPColorScale* scale_ = nullptr;
  QCPTextElement* title_ = nullptr;
  QCPItemText* placeholder_ = nullptr;
  Metric metric_ = Metric::OutputMse;
  QString label_, base_label_;
  std::vector<eval::LayerStats> stats_, base_;
  std::int64_t blocks_ = 0;
  bool diff_ = false;
};

}  // namespace tessera::widgets
