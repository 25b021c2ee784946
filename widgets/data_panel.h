#pragma once
// Model and data of the session: the model (llama2.c .bin or Hugging Face folder), an optional
// tokenizer, the calibration text and the evaluation text. It shows paths and offers Browse
// buttons; the owner opens the model (it validates it) and remembers the paths with QSettings.
#include <QString>
#include <QWidget>

class QLineEdit;

namespace tessera::widgets {

class DataPanel : public QWidget {
  Q_OBJECT

 public:
  explicit DataPanel(QWidget* parent = nullptr);

  QString calibPath() const;
  QString evalTextPath() const;
  void setModelPath(const QString& path);  // shown only; the owner validated it
  void setTokenizerPath(const QString& path);
  void setCalibPath(const QString& path);
  void setEvalTextPath(const QString& path);

 signals:
  void modelBrowseRequested();  // the owner shows its file/folder dialog
  void tokenizerBrowseRequested();
  void calibPathChanged(const QString& path);
  void evalTextPathChanged(const QString& path);

 private:
  void browseText(QLineEdit* edit, const QString& title);

  QLineEdit* model_ = nullptr;
  QLineEdit* tokenizer_ = nullptr;
  QLineEdit* calib_ = nullptr;
  QLineEdit* eval_text_ = nullptr;
};

}  // namespace tessera::widgets
