#pragma once
// Settings and controls of a perplexity evaluation: text file, window length, batch, device and
// dtype, Run/Cancel, a progress bar and the result. It only edits settings and shows state; the
// owner (MainWindow) starts and stops the job when runRequested/cancelRequested fire.
#include <QWidget>

#include "api/job_types.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace tessera::widgets {

class EvalPanel : public QWidget {
  Q_OBJECT

 public:
  explicit EvalPanel(QWidget* parent = nullptr);

  // The settings as a request; the owner fills in the model and tokenizer.
  api::EvalRequest request() const;
  QString textPath() const;
  void setTextPath(const QString& path);
  bool isRunning() const { return running_; }

  // Whether Run is possible (a model is loaded); Run also needs a text file.
  void setModelReady(bool ready);

 public slots:
  void setRunning(bool running);
  void showProgress(const tessera::api::EvalProgress& progress);
  void showResult(const tessera::api::EvalReport& report);
  void showStopped(const QString& why);  // failed or cancelled: the result area says so

 signals:
  void runRequested();
  void cancelRequested();
  void textPathChanged(const QString& path);
  void runtimeChanged(const QString& device, const QString& dtype);

 private:
  void chooseTextFile();
  void updateButtons();

  QLineEdit* text_path_ = nullptr;
  QPushButton* browse_ = nullptr;
  QSpinBox* seq_len_ = nullptr;
  QSpinBox* batch_ = nullptr;
  QComboBox* device_ = nullptr;
  QComboBox* dtype_ = nullptr;
  QPushButton* run_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* stage_ = nullptr;
  QLabel* result_ = nullptr;
  bool model_ready_ = false;
  bool running_ = false;
};

}  // namespace tessera::widgets
