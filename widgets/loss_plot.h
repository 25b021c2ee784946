#pragma once
// Reconstruction loss of the shown runs (log scale): each method's training loss per optimisation
// step (its own objective, so the lines of different methods differ in scale), block boundaries at
// the integers of the x axis, and per block the block output loss of plain RTN (x) and of the
// method (o) at the block's end, which the pipeline measures the same way for every method.
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
