#include "loss_plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tessera::widgets {

void useBlockAxis(QCPAxis* axis, double blocks) {
  QSharedPointer<QCPAxisTickerFixed> ticker(new QCPAxisTickerFixed);
  ticker->setTickStep(1.0);
  ticker->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
  axis->setTicker(ticker);
  axis->grid()->setPen(QPen(QColor(150, 150, 150), 1, Qt::DashLine));
  // A little room past the last boundary, where the last block's markers sit.
  axis->setRange(0, std::max(1.0, blocks) + 0.12);
}

LossPlot::LossPlot(std::shared_ptr<const RunMetricsStore> store, QWidget* parent)
    : RunPlot(std::move(store), tr("Block reconstruction loss"), parent) {
  xAxis->setLabel(tr("Decoder block (steps spread over each block)"));
  yAxis->setLabel(tr("Loss (log)"));
  yAxis->setScaleType(QCPAxis::stLogarithmic);
  yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
  yAxis->setNumberFormat("eb");
  yAxis->setNumberPrecision(0);
  useBlockAxis(xAxis, 1);
  // The step losses are each method's own objective (OmniQuant's MSE is per element, TesseraQ's
  // squared L2 per token), so only the markers compare across methods.
  setSubtitle(tr("lines: each method's training loss;  x / o: RTN / method block loss"));
}

bool LossPlot::rebuild(const std::vector<Shown>& shown) {
  double lo = std::numeric_limits<double>::max(), hi = 0, blocks = 1;
  bool any = false;
  auto extend = [&](double v) {
    if (v > 0 && std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  };
  for (const Shown& s : shown) {
    const RunTrace& t = s.trace;
    blocks = std::max(blocks, static_cast<double>(t.progress.total_blocks));
    if (!t.steps.empty()) {
      QCPGraph* g = addGraph();
      g->setName(s.run.label);
      // 1 px: a wider antialiased pen makes a 20000-point replot take most of a second.
      g->setPen(runPen(s.run, 1.0));
      // One bulk insert of already sorted keys: adding point by point costs far more.
      QVector<double> keys, values;
      keys.reserve(static_cast<int>(t.steps.size()));
      values.reserve(static_cast<int>(t.steps.size()));
      for (const StepLossPoint& p : t.steps) {
        keys.push_back(p.x);
        values.push_back(p.loss);
        extend(p.loss);
      }
      g->setData(keys, values, /*alreadySorted=*/true);
      any = true;
    }
    if (!t.blocks.empty()) {
      QCPGraph* rtn = addGraph();
      rtn->setLineStyle(QCPGraph::lsNone);
      rtn->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCross, s.run.color, 8));
      QCPGraph* after = addGraph();
      after->setLineStyle(QCPGraph::lsNone);
      after->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, s.run.color, Qt::white, 7));
      after->setPen(runPen(s.run, 1.6));
      for (const BlockLoss& b : t.blocks) {
        rtn->addData(b.block + 1.0, b.loss_rtn);
        after->addData(b.block + 1.0, b.loss);
        extend(b.loss_rtn);
        extend(b.loss);
      }
      rtn->removeFromLegend();
      if (t.steps.empty()) {
        after->setName(s.run.label);  // a method without steps: its markers are its legend entry
      } else {
        after->removeFromLegend();
      }
      any = true;
    }
  }
  useBlockAxis(xAxis, blocks);
  if (!any) return false;
  if (hi <= lo) hi = lo * 10;
  yAxis->setRange(lo / 1.5, hi * 1.5);
  return true;
}

}  // namespace tessera::widgets
