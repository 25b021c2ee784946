#pragma once
// PAR hardening progress of the shown runs: the fraction of rounding variables hardened after each
// PAR iteration (solid, markers) against the schedule's target (dashed steps), on the same block
// axis as the loss plot. Methods without PAR (RTN, AWQ, OmniQuant) have nothing to show here.
#include "run_plot.h"

namespace tessera::widgets {

class HardeningPlot : public RunPlot {
  Q_OBJECT

 public:
  explicit HardeningPlot(std::shared_ptr<const RunMetricsStore> store, QWidget* parent = nullptr);

 protected:
  bool rebuild(const std::vector<Shown>& shown) override;
};

}  // namespace tessera::widgets
