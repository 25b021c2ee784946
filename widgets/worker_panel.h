#pragma once
// Where the workbench's jobs run: this machine (a `tessera` program, the one beside the workbench
// unless another build is chosen, e.g. a CUDA one) or another host over SSH (an ssh command line
// and the remote `tessera` path). "Check" asks that worker for its devices and shows them.
#include <QGroupBox>
#include <vector>

#include "api/job_types.h"
#include "worker_endpoint.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;

namespace tessera::widgets {

class WorkerPanel : public QGroupBox {
  Q_OBJECT

 public:
  explicit WorkerPanel(QWidget* parent = nullptr);

  WorkerEndpoint endpoint() const;
  void setEndpoint(const WorkerEndpoint& endpoint);  // emits nothing
  void showChecking();
  void showDevices(const std::vector<api::DeviceInfo>& devices);
  void showError(const QString& message);

 signals:
  void endpointChanged(const tessera::widgets::WorkerEndpoint& endpoint);  // after an edit
  void checkRequested();

 private:
  void updateFields();

  QComboBox* kind_ = nullptr;
  QLineEdit* ssh_ = nullptr;
  QLineEdit* program_ = nullptr;
  QPushButton* check_ = nullptr;
  QLabel* devices_ = nullptr;
};

// "cuda:0  NVIDIA H100 80GB HBM3, 79.1 GiB (78.6 GiB free)"; "cpu  <model>, 16 cores, 125.8 GiB (..)".
QString describeDevice(const api::DeviceInfo& device);

}  // namespace tessera::widgets
