#include "perplexity_plot.h"

#include <algorithm>
#include <cmath>

namespace tessera::widgets {
namespace {
constexpr int kTickMs = 40;  // 25 repaints a second at most: smooth, and cheap for the GUI thread
const QColor kLine(0x1f, 0x6f, 0xb4);
const QColor kFinal(0xc6, 0x28, 0x28);
}  // namespace

PerplexityPlot::PerplexityPlot(std::shared_ptr<const MetricsStore> store, QWidget* parent)
    : QCustomPlot(parent), store_(std::move(store)) {
  setMinimumSize(320, 220);
  QFont title_font = font();
  title_font.setPointSizeF(title_font.pointSizeF() * 1.15);
  title_font.setBold(true);
  plotLayout()->insertRow(0);
  plotLayout()->addElement(0, 0, new QCPTextElement(this, tr("Running perplexity"), title_font));
  // The latest value goes above the axis rect, where it can never cover the curve.
  plotLayout()->insertRow(1);
  subtitle_ = new QCPTextElement(this, tr("exp(mean loss) over the windows so far; lower is better"), font());
  subtitle_->setTextColor(palette().color(QPalette::Disabled, QPalette::Text));
  subtitle_->setMargins(QMargins(0, 0, 0, 4));
  plotLayout()->addElement(1, 0, subtitle_);

  xAxis->setLabel(tr("Windows evaluated"));
  yAxis->setLabel(tr("Perplexity"));
  for (QCPAxis* axis : {xAxis, yAxis}) {
    axis->setLabelFont(font());
    axis->setTickLabelFont(font());
    axis->grid()->setSubGridVisible(false);
  }
  // Window counts are integers: no tick at 2.5 windows.
  QSharedPointer<QCPAxisTickerFixed> integer_ticker(new QCPAxisTickerFixed);
  integer_ticker->setTickStep(1.0);
  integer_ticker->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
  integer_ticker->setTickCount(8);
  xAxis->setTicker(integer_ticker);

  graph_ = addGraph();
  graph_->setName(tr("running perplexity"));
  graph_->setPen(QPen(kLine, 2));
  graph_->setBrush(QColor(kLine.red(), kLine.green(), kLine.blue(), 28));
  graph_->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, kLine, Qt::white, 5));

  final_line_ = new QCPItemStraightLine(this);
  final_line_->setPen(QPen(kFinal, 1.2, Qt::DashLine));
  final_line_->setVisible(false);

  placeholder_ = new QCPItemText(this);
  placeholder_->position->setType(QCPItemPosition::ptAxisRectRatio);
  placeholder_->position->setCoords(0.5, 0.5);
  placeholder_->setText(tr("Run an evaluation to plot perplexity"));
  placeholder_->setColor(palette().color(QPalette::Disabled, QPalette::Text));

  xAxis->setRange(0, 10);
  yAxis->setRange(0, 10);

  // Why a timer and not a signal per point: see the header.
  connect(&timer_, &QTimer::timeout, this, &PerplexityPlot::refresh);
  timer_.start(kTickMs);
}

void PerplexityPlot::setTotalWindows(std::int64_t total) {
  total_windows_ = total;
  rescale();
  replot(QCustomPlot::rpQueuedReplot);
}

void PerplexityPlot::showFinal(double perplexity) {
  refresh();  // the last points may still be in the store
  final_line_->point1->setCoords(0, perplexity);
  final_line_->point2->setCoords(1, perplexity);
  final_line_->setVisible(true);
  subtitle_->setText(
      tr("final perplexity %1 over %2 windows (dashed line)").arg(perplexity, 0, 'f', 4).arg(graph_->dataCount()));
  subtitle_->setTextColor(kFinal);
  rescale();
  replot();
}

void PerplexityPlot::showStopped(const QString& why) {
  refresh();
  stopped_ = true;
  subtitle_->setText(why);
  subtitle_->setTextColor(palette().color(QPalette::Disabled, QPalette::Text));
  replot();
}

int PerplexityPlot::pointCount() const { return graph_->dataCount(); }

void PerplexityPlot::refresh() {
  if (!store_) return;
  const std::uint64_t revision = store_->revision();
  if (revision == seen_revision_) return;  // the usual idle tick: one mutex, no repaint
  seen_revision_ = revision;

  MetricsStore::Slice slice = store_->read(kSeries, seen_points_);
  if (slice.generation != seen_generation_) {
    // The store was cleared for a new run: start the graph over.
    seen_generation_ = slice.generation;
    seen_points_ = 0;
    slice = store_->read(kSeries, 0);
    graph_->data()->clear();
    final_line_->setVisible(false);
    total_windows_ = 0;
    stopped_ = false;
    subtitle_->setText(tr("starting..."));
    subtitle_->setTextColor(palette().color(QPalette::Disabled, QPalette::Text));
  }
  for (const MetricPoint& p : slice.points) graph_->addData(p.x, p.y);
  seen_points_ += slice.points.size();
  if (!slice.points.empty() && !final_line_->visible() && !stopped_) {
    const MetricPoint& last = slice.points.back();
    subtitle_->setText(total_windows_ > 0
                           ? tr("%1 after window %2 of %3").arg(last.y, 0, 'f', 4).arg(last.x).arg(total_windows_)
                           : tr("%1 after window %2").arg(last.y, 0, 'f', 4).arg(last.x));
  }
  placeholder_->setVisible(graph_->dataCount() == 0);
  rescale();
  replot(QCustomPlot::rpQueuedReplot);
}

void PerplexityPlot::rescale() {
  if (graph_->dataCount() == 0 && total_windows_ == 0) {
    xAxis->setRange(0, 10);  // the empty frame, as before any run
    yAxis->setRange(0, 10);
    return;
  }
  const double last_x = graph_->dataCount() ? (graph_->data()->constEnd() - 1)->key : 0.0;
  const double x_max = std::max({1.0, static_cast<double>(total_windows_), last_x});
  xAxis->setRange(0, x_max + std::max(0.5, x_max * 0.02));
  if (graph_->dataCount() == 0) return;
  bool found = false;
  QCPRange y = graph_->getValueRange(found);
  if (final_line_->visible()) y.expand(final_line_->point1->value());
  // Perplexity curves start noisy; start the axis at 0 when that costs little, so the eye reads
  // the level and not only the wiggles.
  const double pad = std::max(0.05 * y.size(), 0.02 * std::fabs(y.upper));
  const double lower = y.lower - pad < 0.35 * y.upper ? 0.0 : y.lower - pad;
  yAxis->setRange(lower, y.upper + pad);
}

}  // namespace tessera::widgets
