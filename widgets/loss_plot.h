#pragma once
// Reconstruction loss of the shown runs: the block output loss per optimisation step (log scale),
// block boundaries at the integers of the x axis, and per block the plain-RTN loss (x) and the
// method's loss after the block (o) at the block's end.
#include "run_plot.h"

namespace tessera::widgets {

class LossPlot : public RunPlot {
  Q_OBJECT

 public:
  explicit LossPlot(std::shared_ptr<const RunMetricsStore> store, QWidget* parent = nullptr);

 protected:
  bool rebuild(const std::vector<Shown>& shown) override;
};

// Fixed integer ticks (block boundaries) with stronger grid lines, shared by the step-axis plots.
void useBlockAxis(QCPAxis* axis, double blocks);

}  // namespace tessera::widgets
