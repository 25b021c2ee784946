#include "run_plot.h"

#include "methods/method_registry.h"

namespace tessera::widgets {

RunPlot::RunPlot(std::shared_ptr<const RunMetricsStore> store, const QString& title, QWidget* parent)
    : QCustomPlot(parent), store_(std::move(store)) {
  setMinimumSize(300, 200);
  QFont title_font = font();
  title_font.setBold(true);
  plotLayout()->insertRow(0);
  plotLayout()->addElement(0, 0, new QCPTextElement(this, title, title_font));
  plotLayout()->insertRow(1);
  QFont small = font();
  small.setPointSizeF(small.pointSizeF() * 0.9);
  subtitle_ = new QCPTextElement(this, QString(), small);
  subtitle_->setTextColor(palette().color(QPalette::Disabled, QPalette::Text));
  subtitle_->setMargins(QMargins(0, 0, 0, 2));
  plotLayout()->addElement(1, 0, subtitle_);
  for (QCPAxis* axis : {xAxis, yAxis}) {
    axis->setLabelFont(font());
    axis->setTickLabelFont(small);
  }
  legend->setFont(small);
  // The legend gets its own row above the axis rect (see placeLegend), entries side by side.
  axisRect()->insetLayout()->take(legend);
  legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
  legend->setWrap(4);
  legend->setBorderPen(Qt::NoPen);
  legend->setBrush(Qt::NoBrush);
  legend->setMargins(QMargins(0, 0, 0, 0));
  legend->setVisible(false);
  placeholder_ = new QCPItemText(this);
  placeholder_->position->setType(QCPItemPosition::ptAxisRectRatio);
  placeholder_->position->setCoords(0.5, 0.5);
  placeholder_->setColor(palette().color(QPalette::Disabled, QPalette::Text));
  placeholder_->setText(tr("Start a run to plot it"));
  connect(&timer_, &QTimer::timeout, this, &RunPlot::refresh);
  timer_.start(kTickMs);
}

void RunPlot::setRuns(const std::vector<PlottedRun>& runs) {
  runs_ = runs;
  dirty_ = true;
  refresh();
}

void RunPlot::setSubtitle(const QString& text) { subtitle_->setText(text); }
void RunPlot::setPlaceholder(const QString& text) { placeholder_->setText(text); }

QPen RunPlot::runPen(const PlottedRun& run, double width, Qt::PenStyle style) const {
  return QPen(run.color, width, style);
}

void RunPlot::refresh() {
  if (!store_) return;
  const std::uint64_t revision = store_->revision();
  if (!dirty_ && revision == drawn_revision_) return;  // the usual idle tick: one mutex, no repaint
  drawn_revision_ = revision;
  dirty_ = false;
  std::vector<Shown> shown;
  for (const PlottedRun& run : runs_) shown.push_back({run, store_->trace(run.id)});
  clearGraphs();
  // Items other than the placeholder belong to the previous rebuild.
  for (int i = itemCount() - 1; i >= 0; --i)
    if (item(i) != placeholder_) removeItem(i);
  const bool drew = rebuild(shown);
  placeholder_->setVisible(!drew);
  placeLegend();
  ++rebuilds_;
  replot(QCustomPlot::rpQueuedReplot);
}

void RunPlot::placeLegend() {
  // Overlaid runs fill every corner of the axis rect, so the legend sits in a row of its own
  // above it, and only while it has entries: an empty legend in the layout grid caps the axis
  // rect's width at the legend's (empty) size.
  const bool in_layout = plotLayout()->hasElement(2, 0) && plotLayout()->element(2, 0) == legend;
  const bool wanted = legend->itemCount() > 0;
  if (wanted && !in_layout) {
    plotLayout()->insertRow(2);
    plotLayout()->addElement(2, 0, legend);
    plotLayout()->setRowStretchFactor(2, 0.001);
  } else if (!wanted && in_layout) {
    plotLayout()->take(legend);
    plotLayout()->simplify();
  }
  legend->setVisible(wanted);
}

QColor methodColor(const QString& method, int variant) {
  // The method's declared colour (methods/<id>_settings.cpp); green for an unknown one.
  const auto* m = methods::find_method(method.toStdString());
  const QColor base = QColor::fromRgb(m ? m->colour : 0x2e7d32);
  // Further runs of the same method: darker/lighter shades, still recognisably the method.
  return variant == 0
             ? base
             : (variant % 2 ? base.darker(100 + 35 * ((variant + 1) / 2)) : base.lighter(100 + 30 * (variant / 2)));
}

}  // namespace tessera::widgets
