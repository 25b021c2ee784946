#include "session_perplexity_plot.h"

#include <algorithm>
#include <cmath>

namespace tessera::widgets {

SessionPerplexityPlot::SessionPerplexityPlot(QWidget* parent) : QCustomPlot(parent) {
  setMinimumSize(300, 200);
  QFont title_font = font();
  title_font.setBold(true);
  plotLayout()->insertRow(0);
  plotLayout()->addElement(0, 0, new QCPTextElement(this, tr("Perplexity of the session's runs"), title_font));
  plotLayout()->insertRow(1);
  QFont small = font();
  small.setPointSizeF(small.pointSizeF() * 0.9);
  subtitle_ = new QCPTextElement(this, tr("runs appear here once evaluated; lower is better"), small);
  subtitle_->setTextColor(palette().color(QPalette::Disabled, QPalette::Text));
  subtitle_->setMargins(QMargins(0, 0, 0, 2));
  plotLayout()->addElement(1, 0, subtitle_);
  xAxis->setTickLabelFont(small);
  yAxis->setTickLabelFont(small);
  yAxis->setLabelFont(font());
  yAxis->setLabel(tr("Perplexity"));
  xAxis->grid()->setVisible(false);
  rebuild();
}

void SessionPerplexityPlot::setBars(const std::vector<Bar>& bars, const QString& text_name) {
  bars_ = bars;
  text_name_ = text_name;
  rebuild();
}

void SessionPerplexityPlot::setReference(double fp_perplexity) {
  reference_ = fp_perplexity;
  rebuild();
}

void SessionPerplexityPlot::rebuild() {
  clearPlottables();
  clearItems();
  QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
  double lo = reference_ > 0 ? reference_ : 1e300, hi = reference_;
  for (std::size_t i = 0; i < bars_.size(); ++i) {
    ticker->addTick(static_cast<double>(i + 1), bars_[i].label);
    lo = std::min(lo, bars_[i].perplexity);
    hi = std::max(hi, bars_[i].perplexity);
  }
  xAxis->setTicker(ticker);
  xAxis->setRange(0.4, std::max<double>(1, bars_.size()) + 0.6);
  if (bars_.empty() && reference_ <= 0) {
    yAxis->setScaleType(QCPAxis::stLinear);
    yAxis->setRange(0, 10);
    replot(QCustomPlot::rpQueuedReplot);
    return;
  }
  const bool log_scale = hi / std::max(lo, 1e-9) > 8;
  if (log_scale) {
    yAxis->setScaleType(QCPAxis::stLogarithmic);
    yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    yAxis->setRange(std::max(1.0, lo / 1.6), hi * 2.5);
  } else {
    yAxis->setScaleType(QCPAxis::stLinear);
    yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    yAxis->setRange(0, hi * 1.18);
  }
  const double base = log_scale ? yAxis->range().lower : 0.0;
  for (std::size_t i = 0; i < bars_.size(); ++i) {
    const Bar& b = bars_[i];
    auto* bar = new QCPBars(xAxis, yAxis);
    bar->setWidth(0.6);
    bar->setBaseValue(base);
    bar->setPen(QPen(b.color.darker(130)));
    bar->setBrush(b.color);
    bar->addData(static_cast<double>(i + 1), b.perplexity - base);
    auto* value = new QCPItemText(this);
    value->position->setCoords(static_cast<double>(i + 1), b.perplexity);
    value->setPositionAlignment(Qt::AlignHCenter | Qt::AlignBottom);
    value->setPadding(QMargins(0, 0, 0, 2));
    value->setText(QString::number(b.perplexity, 'f', b.perplexity < 100 ? 2 : 0));
  }
  if (reference_ > 0) {
    auto* line = new QCPItemStraightLine(this);
    line->setPen(QPen(QColor(0x2e, 0x7d, 0x32), 1.3, Qt::DashLine));
    line->point1->setCoords(0, reference_);
    line->point2->setCoords(1, reference_);
    auto* label = new QCPItemText(this);
    // At the right end, on a white box, so that it stays readable where it crosses a bar.
    label->position->setCoords(std::max<double>(1, bars_.size()) + 0.55, reference_);
    label->setPositionAlignment(Qt::AlignRight | Qt::AlignBottom);
    label->setColor(QColor(0x2e, 0x7d, 0x32));
    label->setBrush(QColor(255, 255, 255, 220));
    label->setPadding(QMargins(3, 1, 3, 1));
    label->setText(tr("unquantized model %1").arg(reference_, 0, 'f', 2));
  }
  subtitle_->setText(text_name_.isEmpty() ? tr("lower is better") : tr("on %1; lower is better").arg(text_name_));
  replot(QCustomPlot::rpQueuedReplot);
}

}  // namespace tessera::widgets
