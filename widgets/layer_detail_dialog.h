#pragma once
// The detail of one quantized Linear (a heatmap click): histograms of its code changes against
// plain RTN, of its per-group scale changes against RTN, of TesseraQ's DST factors, and of its
// codes. The numbers come from a "layer_detail" request to the run's worker (it reads the run and
// the model checkpoint where the run lives).
#include <QDialog>
#include <QString>
#include <cstdint>

#include "api/job_types.h"
#include "worker_endpoint.h"

class QLabel;
class QCustomPlot;

namespace tessera::widgets {

class WorkerJob;

class LayerDetailDialog : public QDialog {
  Q_OBJECT

 public:
  LayerDetailDialog(const QString& run_name, const QString& run_dir, std::int64_t block, const QString& layer,
                    const WorkerEndpoint& worker, QWidget* parent = nullptr);
  ~LayerDetailDialog() override;

 signals:
  void loaded();  // the plots or the error message are shown

 private:
  void showDetail(const api::LayerDetail& d);
  void showError(const QString& message);

  QLabel* summary_ = nullptr;
  QCustomPlot* changes_ = nullptr;
  QCustomPlot* scales_ = nullptr;
  QCustomPlot* dst_ = nullptr;
  QCustomPlot* codes_ = nullptr;
  WorkerJob* job_ = nullptr;  // until the detail has come
};

}  // namespace tessera::widgets
