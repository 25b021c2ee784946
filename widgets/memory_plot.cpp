#include "memory_plot.h"

#include <algorithm>

namespace tessera::widgets {

namespace {
constexpr double kMiB = 1024.0 * 1024.0;
}

MemoryPlot::MemoryPlot(std::shared_ptr<const RunMetricsStore> store, QWidget* parent)
    : RunPlot(std::move(store), tr("Memory in use"), parent) {
  xAxis->setLabel(tr("Seconds since the run started"));
  yAxis->setLabel(tr("MiB"));
  setSubtitle(tr("solid: resident memory;  dashed: GPU memory (GPU runs)"));
}

bool MemoryPlot::rebuild(const std::vector<Shown>& shown) {
  double x_max = 1, y_max = 1;
  bool any = false, any_gpu = false;
  for (const Shown& s : shown) {
    if (s.trace.memory.empty()) continue;
    QCPGraph* rss = addGraph();
    rss->setName(s.run.label);
    rss->setPen(runPen(s.run, 1.0));  // wider pens make long series slow to draw
    const bool gpu = s.trace.peakGpuBytes() > 0;
    QCPGraph* dev = nullptr;
    if (gpu) {
      dev = addGraph();
      dev->setName(s.run.label + tr(" (GPU)"));
      dev->setPen(runPen(s.run, 1.0, Qt::DashLine));
      any_gpu = true;
    }
    for (const MemoryPoint& m : s.trace.memory) {
      rss->addData(m.seconds, m.rss_bytes / kMiB);
      if (dev) dev->addData(m.seconds, m.gpu_bytes / kMiB);
      x_max = std::max(x_max, m.seconds);
      y_max = std::max({y_max, m.rss_bytes / kMiB, m.gpu_bytes / kMiB});
    }
    any = true;
  }
  if (!any) return false;
  if (!any_gpu)
    setSubtitle(tr("process resident memory (CPU runs use no GPU memory)"));
  else
    setSubtitle(tr("solid: resident memory;  dashed: GPU memory allocated"));
  xAxis->setRange(0, x_max * 1.03);
  yAxis->setRange(0, y_max * 1.15);
  return true;
}

}  // namespace tessera::widgets
