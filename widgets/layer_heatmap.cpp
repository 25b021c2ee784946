#include "layer_heatmap.h"

#include <QToolTip>
#include <algorithm>
#include <cmath>
#include <map>

namespace tessera::widgets {

namespace {
// Short column labels; the stats use the Hugging Face names.
const char* const kShort[] = {"q", "k", "v", "o", "gate", "up", "down"};

bool logScaled(LayerHeatmap::Metric m) { return m == LayerHeatmap::Metric::OutputMse; }

QString formatValue(LayerHeatmap::Metric m, double v) {
  switch (m) {
    case LayerHeatmap::Metric::OutputMse:
      return QString::number(v, 'e', 4);
    case LayerHeatmap::Metric::RelWeightError:
      return QString::number(v, 'f', 5);
    case LayerHeatmap::Metric::FlipRatio:
      return QString("%1 %").arg(100.0 * v, 0, 'f', 3);
    case LayerHeatmap::Metric::DstSpread:
      return QString::number(v, 'f', 5);
  }
  return QString::number(v);
}
}  // namespace

QString LayerHeatmap::metricName(Metric metric) {
  switch (metric) {
    case Metric::OutputMse:
      return tr("Output MSE");
    case Metric::RelWeightError:
      return tr("Relative weight error");
    case Metric::FlipRatio:
      return tr("Flip ratio vs RTN");
    case Metric::DstSpread:
      return tr("DST scale spread (max - min)");
  }
  return QString();
}

double LayerHeatmap::metricValue(const eval::LayerStats& s, Metric metric) {
  switch (metric) {
    case Metric::OutputMse:
      return s.output_mse;
    case Metric::RelWeightError:
      return s.rel_weight_error;
    case Metric::FlipRatio:
      return s.flip_ratio;
    case Metric::DstSpread:
      return s.dst_max - s.dst_min;
  }
  return 0;
}

const std::vector<QString>& LayerHeatmap::layerNames() {
  static const std::vector<QString> names = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                             "gate_proj", "up_proj", "down_proj"};
  return names;
}

LayerHeatmap::LayerHeatmap(QWidget* parent) : QCustomPlot(parent) {
  setMinimumSize(300, 200);
  setMouseTracking(true);
  QFont title_font = font();
  title_font.setBold(true);
  plotLayout()->insertRow(0);
  title_ = new QCPTextElement(this, tr("Per-layer error"), title_font);
  plotLayout()->addElement(0, 0, title_);
  QFont small = font();
  small.setPointSizeF(small.pointSizeF() * 0.9);
  QSharedPointer<QCPAxisTickerText> layers(new QCPAxisTickerText);
  for (int i = 0; i < 7; ++i) layers->addTick(i, kShort[i]);
  xAxis->setTicker(layers);
  xAxis->setTickLabelFont(small);
  yAxis->setTickLabelFont(small);
  yAxis->setLabel(tr("Block"));
  yAxis->setRangeReversed(true);  // block 0 on top, as in the model
  xAxis->grid()->setVisible(false);
  yAxis->grid()->setVisible(false);
  map_ = new QCPColorMap(xAxis, yAxis);
  map_->setInterpolate(false);
  scale_ = new QCPColorScale(this);
  scale_->axis()->setTickLabelFont(small);
  plotLayout()->addElement(1, 1, scale_);
  map_->setColorScale(scale_);
  placeholder_ = new QCPItemText(this);
  placeholder_->position->setType(QCPItemPosition::ptAxisRectRatio);
  placeholder_->position->setCoords(0.5, 0.5);
  placeholder_->setColor(palette().color(QPalette::Disabled, QPalette::Text));
  placeholder_->setText(tr("Per-layer errors appear as blocks finish"));
  auto* group = new QCPMarginGroup(this);
  axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, group);
  scale_->setMarginGroup(QCP::msBottom | QCP::msTop, group);
  rebuild();
}

void LayerHeatmap::showRun(const QString& label, const std::vector<eval::LayerStats>& stats, std::int64_t blocks) {
  diff_ = false;
  label_ = label;
  stats_ = stats;
  base_.clear();
  blocks_ = blocks;
  rebuild();
}

void LayerHeatmap::showDiff(const QString& base_label, const std::vector<eval::LayerStats>& base, const QString& label,
                            const std::vector<eval::LayerStats>& compare, std::int64_t blocks) {
  diff_ = true;
  base_label_ = base_label;
  base_ = base;
  label_ = label;
  stats_ = compare;
  blocks_ = blocks;
  rebuild();
}

void LayerHeatmap::setMetric(Metric metric) {
  metric_ = metric;
  rebuild();
}

const eval::LayerStats* LayerHeatmap::find(const std::vector<eval::LayerStats>& stats, std::int64_t block,
                                           int layer) const {
  const QString& name = layerNames()[static_cast<std::size_t>(layer)];
  for (const auto& s : stats)
    if (s.block == block && QString::fromStdString(s.layer) == name) return &s;
  return nullptr;
}

int LayerHeatmap::cellsWithData() const {
  int n = 0;
  for (std::int64_t b = 0; b < blocks_; ++b)
    for (int l = 0; l < 7; ++l) n += find(stats_, b, l) && (!diff_ || find(base_, b, l)) ? 1 : 0;
  return n;
}

void LayerHeatmap::rebuild() {
  const std::int64_t blocks = std::max<std::int64_t>(blocks_, 1);
  map_->data()->setSize(7, static_cast<int>(blocks));
  map_->data()->setRange(QCPRange(0, 6), QCPRange(0, static_cast<double>(blocks - 1)));
  map_->data()->fill(qQNaN());
  double lo = 1e300, hi = -1e300;
  int filled = 0;
  // Index both runs once: a run of a large model has thousands of layers.
  auto index = [](const std::vector<eval::LayerStats>& stats) {
    std::map<std::pair<std::int64_t, QString>, const eval::LayerStats*> m;
    for (const auto& s : stats) m[{s.block, QString::fromStdString(s.layer)}] = &s;
    return m;
  };
  const auto compare = index(stats_), base = index(base_);
  for (std::int64_t b = 0; b < blocks_; ++b) {
    for (int l = 0; l < 7; ++l) {
      const auto key = std::make_pair(b, layerNames()[static_cast<std::size_t>(l)]);
      const auto it = compare.find(key);
      if (it == compare.end()) continue;
      double v = metricValue(*it->second, metric_);
      if (diff_) {
        const auto a = base.find(key);
        if (a == base.end()) continue;
        const double va = metricValue(*a->second, metric_);
        // Error metrics compare as a ratio (log2: -1 = half the error); the flip ratio and the
        // DST spread are already fractions and compare as a difference.
        v = (metric_ == Metric::OutputMse || metric_ == Metric::RelWeightError)
                ? (va > 0 && v > 0 ? std::log2(v / va) : qQNaN())
                : v - va;
      }
      if (!std::isfinite(v)) continue;
      map_->data()->setCell(l, static_cast<int>(b), v);
      ++filled;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (diff_) {
    const double m = std::max({std::fabs(lo), std::fabs(hi), 1e-12});
    QCPColorGradient g(QCPColorGradient::gpPolar);  // blue: the second run is better, red: worse
    g.setNanHandling(QCPColorGradient::nhTransparent);
    map_->setGradient(g);
    map_->setDataScaleType(QCPAxis::stLinear);
    scale_->axis()->setScaleType(QCPAxis::stLinear);
    scale_->axis()->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    map_->setDataRange(QCPRange(-m, m));
    scale_->axis()->setLabel(metric_ == Metric::OutputMse || metric_ == Metric::RelWeightError
                                 ? tr("log2(%1 / %2)").arg(label_, base_label_)
                                 : tr("%1 - %2").arg(label_, base_label_));
    title_->setText(tr("%1: %2 vs %3 (blue: %2 lower)").arg(metricName(metric_), label_, base_label_));
  } else {
    QCPColorGradient g(QCPColorGradient::gpThermal);
    g.setNanHandling(QCPColorGradient::nhTransparent);
    map_->setGradient(g);
    const bool log = logScaled(metric_) && lo > 0;
    map_->setDataScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    scale_->axis()->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    if (log)
      scale_->axis()->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    else
      scale_->axis()->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    if (hi < lo) {
      lo = 0;
      hi = 1;
    } else if (hi == lo) {
      hi = lo + (lo == 0 ? 1 : std::fabs(lo) * 0.1);
    }
    map_->setDataRange(QCPRange(lo, hi));
    scale_->axis()->setLabel(metricName(metric_));
    title_->setText(label_.isEmpty() ? tr("Per-layer error (select a run)")
                                     : tr("%1 per layer: %2").arg(metricName(metric_), label_));
  }
  scale_->axis()->setNumberFormat(metric_ == Metric::OutputMse && !diff_ ? "eb" : "g");
  scale_->axis()->setNumberPrecision(metric_ == Metric::OutputMse && !diff_ ? 0 : 3);
  QSharedPointer<QCPAxisTickerFixed> block_ticks(new QCPAxisTickerFixed);
  block_ticks->setTickStep(1.0);
  block_ticks->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
  yAxis->setTicker(block_ticks);
  xAxis->setRange(-0.5, 6.5);
  yAxis->setRange(-0.5, static_cast<double>(blocks) - 0.5);
  placeholder_->setVisible(filled == 0);
  replot(QCustomPlot::rpQueuedReplot);
}

bool LayerHeatmap::cellAt(const QPoint& pos, std::int64_t& block, int& layer) const {
  if (!axisRect()->rect().contains(pos)) return false;
  const double x = xAxis->pixelToCoord(pos.x()), y = yAxis->pixelToCoord(pos.y());
  layer = static_cast<int>(std::lround(x));
  block = std::llround(y);
  return layer >= 0 && layer < 7 && block >= 0 && block < blocks_;
}

QString LayerHeatmap::cellText(std::int64_t block, int layer_index) const {
  const auto* s = find(stats_, block, layer_index);
  if (!s) return QString();
  const QString name = layerNames()[static_cast<std::size_t>(layer_index)];
  QString text = tr("block %1 %2\n%3: %4").arg(block).arg(name, label_, formatValue(metric_, metricValue(*s, metric_)));
  if (diff_) {
    if (const auto* a = find(base_, block, layer_index))
      text += tr("\n%1: %2").arg(base_label_, formatValue(metric_, metricValue(*a, metric_)));
  } else {
    text += tr("\noutput MSE %1, rel. weight error %2\nflip ratio %3, DST factors [%4, %5] std %6")
                .arg(s->output_mse, 0, 'e', 3)
                .arg(s->rel_weight_error, 0, 'f', 5)
                .arg(formatValue(Metric::FlipRatio, s->flip_ratio))
                .arg(s->dst_min, 0, 'f', 4)
                .arg(s->dst_max, 0, 'f', 4)
                .arg(s->dst_std, 0, 'f', 5);
  }
  return text + tr("\n(click for the layer's detail)");
}

void LayerHeatmap::mouseMoveEvent(QMouseEvent* event) {
  QCustomPlot::mouseMoveEvent(event);
  std::int64_t block = 0;
  int layer = 0;
  const QString text = cellAt(event->pos(), block, layer) ? cellText(block, layer) : QString();
  if (text.isEmpty())
    QToolTip::hideText();
  else
    QToolTip::showText(event->globalPosition().toPoint(), text, this);
}

void LayerHeatmap::mouseReleaseEvent(QMouseEvent* event) {
  QCustomPlot::mouseReleaseEvent(event);
  std::int64_t block = 0;
  int layer = 0;
  if (event->button() == Qt::LeftButton && cellAt(event->pos(), block, layer) && find(stats_, block, layer))
    emit cellClicked(block, layerNames()[static_cast<std::size_t>(layer)]);
}

}  // namespace tessera::widgets
