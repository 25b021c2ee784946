#include "data_panel.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>

namespace tessera::widgets {

namespace {
QWidget* row(QLineEdit* edit, QPushButton* button) {
  auto* w = new QWidget;
  auto* l = new QHBoxLayout(w);
  l->setContentsMargins(0, 0, 0, 0);
  l->addWidget(edit, 1);
  l->addWidget(button);
  return w;
}

QPushButton* browseButton() {
  auto* b = new QPushButton(QObject::tr("..."));
  b->setFixedWidth(b->fontMetrics().horizontalAdvance("....") + 16);
  b->setToolTip(QObject::tr("Browse"));
  return b;
}
}  // namespace

DataPanel::DataPanel(QWidget* parent) : QWidget(parent) {
  model_ = new QLineEdit;
  model_->setReadOnly(true);
  model_->setPlaceholderText(tr("File > Open Model..."));
  tokenizer_ = new QLineEdit;
  tokenizer_->setReadOnly(true);
  tokenizer_->setPlaceholderText(tr("the one beside the model"));
  calib_ = new QLineEdit;
  calib_->setPlaceholderText(tr("plain text or JSON lines"));
  eval_text_ = new QLineEdit;
  eval_text_->setPlaceholderText(tr("perplexity after each run"));
  auto* model_browse = browseButton();
  auto* tok_browse = browseButton();
  auto* calib_browse = browseButton();
  auto* eval_browse = browseButton();

  auto* form = new QFormLayout;
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  form->addRow(tr("Model"), row(model_, model_browse));
  form->addRow(tr("Tokenizer"), row(tokenizer_, tok_browse));
  form->addRow(tr("Calibration"), row(calib_, calib_browse));
  form->addRow(tr("Evaluation"), row(eval_text_, eval_browse));
  auto* box = new QGroupBox(tr("Model and data"));
  box->setLayout(form);
  auto* outer = new QVBoxLayout(this);
  outer->setContentsMargins(0, 0, 0, 0);
  outer->addWidget(box);

  connect(model_browse, &QPushButton::clicked, this, &DataPanel::modelBrowseRequested);
  connect(tok_browse, &QPushButton::clicked, this, &DataPanel::tokenizerBrowseRequested);
  connect(calib_browse, &QPushButton::clicked, this, [this] { browseText(calib_, tr("Calibration text")); });
  connect(eval_browse, &QPushButton::clicked, this, [this] { browseText(eval_text_, tr("Evaluation text")); });
  connect(calib_, &QLineEdit::textChanged, this, &DataPanel::calibPathChanged);
  connect(eval_text_, &QLineEdit::textChanged, this, &DataPanel::evalTextPathChanged);
}

void DataPanel::browseText(QLineEdit* edit, const QString& title) {
  const QString start = edit->text().isEmpty() ? QString() : QFileInfo(edit->text()).absolutePath();
  const QString path =
      QFileDialog::getOpenFileName(this, title, start, tr("Text (*.txt *.jsonl *.json);;All files (*)"));
  if (!path.isEmpty()) edit->setText(path);
}

QString DataPanel::calibPath() const { return calib_->text(); }
QString DataPanel::evalTextPath() const { return eval_text_->text(); }
void DataPanel::setModelPath(const QString& path) { model_->setText(path); }
void DataPanel::setTokenizerPath(const QString& path) { tokenizer_->setText(path); }
void DataPanel::setCalibPath(const QString& path) { calib_->setText(path); }
void DataPanel::setEvalTextPath(const QString& path) { eval_text_->setText(path); }

}  // namespace tessera::widgets
