#include "hardening_plot.h"

#include <algorithm>

#include "loss_plot.h"

namespace tessera::widgets {

HardeningPlot::HardeningPlot(std::shared_ptr<const RunMetricsStore> store, QWidget* parent)
    : RunPlot(std::move(store), tr("PAR hardening progress"), parent) {
  xAxis->setLabel(tr("Decoder block (steps spread over each block)"));
  yAxis->setLabel(tr("Hard fraction"));
  yAxis->setRange(0, 1.05);
  useBlockAxis(xAxis, 1);
  setSubtitle(tr("solid: hard fraction reached;  dashed: schedule target"));
  setPlaceholder(tr("No PAR hardening in the shown runs (TesseraQ only)"));
}

bool HardeningPlot::rebuild(const std::vector<Shown>& shown) {
  double blocks = 1;
  bool any = false;
  for (const Shown& s : shown) {
    blocks = std::max(blocks, static_cast<double>(s.trace.progress.total_blocks));
    if (s.trace.hardening.empty()) continue;
    QCPGraph* target = addGraph();
    target->setPen(runPen(s.run, 1.2, Qt::DashLine));
    // The target holds from the iteration's start: drawn as steps ending at each iteration.
    target->setLineStyle(QCPGraph::lsStepRight);
    target->removeFromLegend();
    QCPGraph* reached = addGraph();
    reached->setName(s.run.label);
    reached->setPen(runPen(s.run, 1.6));
    reached->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, s.run.color, 5));
    double block_start = -1;
    for (const HardeningPoint& p : s.trace.hardening) {
      // Each block starts from zero hardened variables; a gap (NaN) separates blocks.
      const double block = std::floor(p.x - 1e-9);
      if (block != block_start) {
        if (block_start >= 0) {
          reached->addData(block, qQNaN());
          target->addData(block, qQNaN());
        }
        reached->addData(block, 0.0);
        target->addData(block, p.target);
        block_start = block;
      }
      reached->addData(p.x, p.reached);
      target->addData(p.x, p.target);
    }
    any = true;
  }
  useBlockAxis(xAxis, blocks);
  yAxis->setRange(0, 1.05);
  return any;
}

}  // namespace tessera::widgets
