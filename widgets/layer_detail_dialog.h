#pragma once
// The detail of one quantized Linear (a heatmap click): histograms of its code changes against
// plain RTN, of its per-group scale changes against RTN, of TesseraQ's DST factors, and of its
// codes. The numbers come from api::layer_detail, computed on a worker thread because it reads
// the model checkpoint.
#include <QDialog>
#include <QString>
#include <cstdint>

#include "api/layer_detail.h"

class QLabel;
class QCustomPlot;
class QThread;

namespace tessera::widgets {

class LayerDetailDialog : public QDialog {
  Q_OBJECT

 public:
  LayerDetailDialog(const QString& run_name, const QString& run_dir, std::int64_t block, const QString& layer,
                    QWidget* parent = nullptr);
  ~LayerDetailDialog() override;  // waits for the computation

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
  QThread* thread_ = nullptr;
};

}  // namespace tessera::widgets
