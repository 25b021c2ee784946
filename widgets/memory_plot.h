#pragma once
// Memory in use while the shown runs ran: the worker process's resident memory (solid) and, on
// a GPU, the memory allocated on the run's device (dashed), against seconds since the run began.
#include "run_plot.h"

namespace tessera::widgets {

class MemoryPlot : public RunPlot {
  Q_OBJECT

 public:
  explicit MemoryPlot(std::shared_ptr<const RunMetricsStore> store, QWidget* parent = nullptr);

 protected:
  bool rebuild(const std::vector<Shown>& shown) override;
};

}  // namespace tessera::widgets
