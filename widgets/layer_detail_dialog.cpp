#include "layer_detail_dialog.h"

#include <qcustomplot.h>

#include <QGridLayout>
#include <QLabel>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "methods/method_registry.h"
#include "protocol/worker_protocol.h"
#include "worker_job.h"

namespace tessera::widgets {

namespace {

QCustomPlot* histogramPlot(const QString& title, const QString& x_label) {
  auto* plot = new QCustomPlot;
  plot->setMinimumSize(340, 220);
  QFont bold = plot->font();
  bold.setBold(true);
  plot->plotLayout()->insertRow(0);
  plot->plotLayout()->addElement(0, 0, new QCPTextElement(plot, title, bold));
  plot->xAxis->setLabel(x_label);
  plot->yAxis->setLabel(QObject::tr("Count"));
  // Counts are integers: no tick at 12.5.
  QSharedPointer<QCPAxisTickerFixed> counts(new QCPAxisTickerFixed);
  counts->setTickStep(1.0);
  counts->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
  plot->yAxis->setTicker(counts);
  return plot;
}

// Bars at `keys` with `counts`; `width` the bar width in key units.
void fillBars(QCustomPlot* plot, const QVector<double>& keys, const QVector<double>& counts, double width,
              const QColor& color) {
  auto* bars = new QCPBars(plot->xAxis, plot->yAxis);
  bars->setWidth(width);
  bars->setPen(QPen(color.darker(130)));
  bars->setBrush(color);
  bars->setData(keys, counts);
  plot->rescaleAxes();
  plot->xAxis->setRange(plot->xAxis->range().lower - width, plot->xAxis->range().upper + width);
  plot->yAxis->setRange(0, *std::max_element(counts.begin(), counts.end()) * 1.12 + 1);
  plot->replot();
}

// A histogram of `values` in `bins` equal bins over their range.
void fillHistogram(QCustomPlot* plot, const std::vector<double>& values, int bins, const QColor& color) {
  if (values.empty()) return;
  const auto [mn, mx] = std::minmax_element(values.begin(), values.end());
  double lo = *mn, hi = *mx;
  if (hi - lo < 1e-12) {
    lo -= 0.01;
    hi += 0.01;
  }
  const double width = (hi - lo) / bins;
  QVector<double> keys(bins), counts(bins, 0.0);
  for (int i = 0; i < bins; ++i) keys[i] = lo + (i + 0.5) * width;
  for (double v : values) counts[std::min(bins - 1, static_cast<int>((v - lo) / width))] += 1;
  fillBars(plot, keys, counts, width * 0.9, color);
}

void placeholder(QCustomPlot* plot, const QString& text) {
  auto* label = new QCPItemText(plot);
  label->position->setType(QCPItemPosition::ptAxisRectRatio);
  label->position->setCoords(0.5, 0.5);
  label->setText(text);
  label->setColor(plot->palette().color(QPalette::Disabled, QPalette::Text));
  plot->replot();
}

}  // namespace

LayerDetailDialog::LayerDetailDialog(const QString& run_name, const QString& run_dir, std::int64_t block,
                                     const QString& layer, const WorkerEndpoint& worker, QWidget* parent)
    : QDialog(parent) {
  setWindowTitle(tr("%1: block %2 %3").arg(run_name).arg(block).arg(layer));
  summary_ = new QLabel(tr("Reading block %1 of %2 and the checkpoint...").arg(block).arg(run_dir));
  summary_->setWordWrap(true);
  changes_ = histogramPlot(tr("Code changes vs plain RTN"), tr("code - RTN code"));
  scales_ = histogramPlot(tr("Per-group scale change vs RTN"), tr("scale / RTN scale"));
  dst_ = histogramPlot(tr("DST factors per group (TesseraQ)"), tr("factor"));
  codes_ = histogramPlot(tr("Code values"), tr("code"));
  auto* grid = new QGridLayout;
  grid->addWidget(changes_, 0, 0);
  grid->addWidget(scales_, 0, 1);
  grid->addWidget(dst_, 1, 0);
  grid->addWidget(codes_, 1, 1);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(summary_);
  layout->addLayout(grid, 1);
  resize(900, 640);

  job_ = new WorkerJob(worker, "layer_detail",
                       {{"run_dir", run_dir.toStdString()}, {"block", block}, {"layer", layer.toStdString()}}, this);
  connect(job_, &WorkerJob::succeeded, this, [this](const protocol::Json& result) {
    job_->release();
    job_ = nullptr;
    try {
      showDetail(protocol::layer_detail_from_json(result));
    } catch (const std::exception& e) {
      showError(QString::fromStdString(e.what()));
    }
  });
  connect(job_, &WorkerJob::failed, this, [this](const QString& message) {
    job_->release();
    job_ = nullptr;
    showError(message);
  });
  job_->start();
}

LayerDetailDialog::~LayerDetailDialog() {
  if (!job_) return;
  // Closed before the numbers came: the worker ends on its own, nobody waits for it.
  job_->disconnect(this);
  job_->release();
}

void LayerDetailDialog::showDetail(const api::LayerDetail& d) {
  const auto* method = methods::find_method(d.method);
  const bool transforms_weights = !method || method->transforms_weights;
  summary_->setText(tr("%1 block %2 %3: %4 x %5 weights, %6-bit codes, groups of %7 (%8 per row). "
                       "%9 % of the codes differ from plain RTN of the checkpoint's weight%10.")
                        .arg(QString::fromStdString(d.method))
                        .arg(d.block)
                        .arg(QString::fromStdString(d.layer))
                        .arg(d.rows)
                        .arg(d.cols)
                        .arg(d.bits)
                        .arg(d.group_size)
                        .arg(d.groups)
                        .arg(100.0 * d.changed_fraction, 0, 'f', 3)
                        .arg(!transforms_weights
                                 ? QString()
                                 : tr(" (for AWQ-initialised methods this includes the AWQ scaling of the weight)")));
  QVector<double> keys, counts;
  for (std::size_t i = 0; i < d.code_change_counts.size(); ++i) {
    keys << static_cast<double>(d.code_change_min + static_cast<std::int64_t>(i));
    counts << static_cast<double>(d.code_change_counts[i]);
  }
  fillBars(changes_, keys, counts, 0.7, QColor(0x1f, 0x6f, 0xb4));
  fillHistogram(scales_, d.scale_ratio, 40, QColor(0xe6, 0x7e, 0x22));
  if (d.dst_factors.empty())
    placeholder(dst_, tr("no DST in a %1 run").arg(QString::fromStdString(d.method)));
  else
    fillHistogram(dst_, d.dst_factors, 40, QColor(0x8e, 0x44, 0xad));
  keys.clear();
  counts.clear();
  for (std::size_t i = 0; i < d.code_counts.size(); ++i) {
    keys << static_cast<double>(i);
    counts << static_cast<double>(d.code_counts[i]);
  }
  fillBars(codes_, keys, counts, 0.7, QColor(0x75, 0x75, 0x75));
  emit loaded();
}

void LayerDetailDialog::showError(const QString& message) {
  summary_->setText(tr("Cannot show this layer: %1").arg(message));
  summary_->setStyleSheet("color: #c62828;");
  emit loaded();
}

}  // namespace tessera::widgets
