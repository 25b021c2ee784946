#include "eval_panel.h"

#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>
#include <algorithm>

namespace tessera::widgets {
namespace {
QString grouped(std::int64_t n) { return QLocale(QLocale::English).toString(static_cast<qlonglong>(n)); }
}  // namespace

EvalPanel::EvalPanel(QWidget* parent) : QWidget(parent) {
  auto* settings = new QGroupBox(tr("Perplexity evaluation"), this);
  auto* form = new QFormLayout(settings);
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);

  text_path_ = new QLineEdit(settings);
  text_path_->setPlaceholderText(tr("UTF-8 text file"));
  browse_ = new QPushButton(tr("Browse..."), settings);
  auto* text_row = new QHBoxLayout;
  text_row->addWidget(text_path_, 1);
  text_row->addWidget(browse_);
  form->addRow(tr("Text file"), text_row);

  seq_len_ = new QSpinBox(settings);
  seq_len_->setRange(0, 1 << 20);
  seq_len_->setSingleStep(128);
  seq_len_->setSpecialValueText(tr("default (model context, max 2048)"));
  seq_len_->setToolTip(tr("Tokens per window; 0 uses min(2048, model context)"));
  form->addRow(tr("Window length"), seq_len_);

  batch_ = new QSpinBox(settings);
  batch_->setRange(1, 1024);
  batch_->setToolTip(tr("Windows per forward pass"));
  form->addRow(tr("Batch"), batch_);

  device_ = new QComboBox(settings);
  device_->addItems({"cpu", "cuda"});
  form->addRow(tr("Device"), device_);

  dtype_ = new QComboBox(settings);
  dtype_->addItems({"fp32", "fp16", "bf16"});
  form->addRow(tr("Dtype"), dtype_);

  run_ = new QPushButton(tr("Run"), settings);
  run_->setDefault(true);
  cancel_ = new QPushButton(tr("Cancel"), settings);
  auto* buttons = new QHBoxLayout;
  buttons->addStretch(1);
  buttons->addWidget(cancel_);
  buttons->addWidget(run_);
  form->addRow(buttons);

  auto* status = new QGroupBox(tr("Progress and result"), this);
  auto* status_layout = new QVBoxLayout(status);
  stage_ = new QLabel(tr("Idle"), status);
  progress_ = new QProgressBar(status);
  progress_->setRange(0, 1);
  progress_->setValue(0);
  progress_->setFormat(tr("not started"));
  result_ = new QLabel(tr("No result yet."), status);
  result_->setTextFormat(Qt::RichText);
  result_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  result_->setWordWrap(true);
  result_->setAlignment(Qt::AlignLeft | Qt::AlignTop);
  status_layout->addWidget(stage_);
  status_layout->addWidget(progress_);
  status_layout->addWidget(result_, 1);

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(settings);
  layout->addWidget(status, 1);

  connect(browse_, &QPushButton::clicked, this, &EvalPanel::chooseTextFile);
  connect(text_path_, &QLineEdit::textChanged, this, [this](const QString& path) {
    updateButtons();
    emit textPathChanged(path);
  });
  connect(run_, &QPushButton::clicked, this, &EvalPanel::runRequested);
  connect(cancel_, &QPushButton::clicked, this, &EvalPanel::cancelRequested);
  auto runtime_changed = [this] { emit runtimeChanged(device_->currentText(), dtype_->currentText()); };
  connect(device_, &QComboBox::currentTextChanged, this, runtime_changed);
  connect(dtype_, &QComboBox::currentTextChanged, this, runtime_changed);
  updateButtons();
}

api::EvalRequest EvalPanel::request() const {
  api::EvalRequest r;
  r.text_path = text_path_->text().trimmed().toStdString();
  r.seq_len = seq_len_->value();
  r.batch_size = batch_->value();
  r.device = device_->currentText().toStdString();
  r.dtype = dtype_->currentText().toStdString();
  return r;
}

QString EvalPanel::textPath() const { return text_path_->text().trimmed(); }

void EvalPanel::setTextPath(const QString& path) { text_path_->setText(path); }

void EvalPanel::setModelReady(bool ready) {
  model_ready_ = ready;
  updateButtons();
}

void EvalPanel::setRunning(bool running) {
  running_ = running;
  if (running) {
    stage_->setText(tr("Starting..."));
    progress_->setRange(0, 0);  // busy indicator until the window count is known
    result_->setText(tr("Running..."));
  }
  updateButtons();
}

void EvalPanel::showProgress(const api::EvalProgress& p) {
  if (p.stage == "evaluating" && p.windows_total > 0) {
    progress_->setFormat(tr("%v / %m windows"));
    progress_->setRange(0, static_cast<int>(p.windows_total));
    progress_->setValue(static_cast<int>(p.windows_done));
    stage_->setText(tr("Evaluating: running perplexity %1").arg(p.running_perplexity, 0, 'f', 4));
  } else {
    progress_->setRange(0, 0);
    stage_->setText(p.stage == "loading" ? tr("Loading model and tokenizer...") : tr("Tokenizing the text..."));
  }
}

void EvalPanel::showResult(const api::EvalReport& r) {
  progress_->setFormat(tr("%v / %m windows"));
  progress_->setRange(0, static_cast<int>(std::max<std::int64_t>(1, r.windows)));
  progress_->setValue(static_cast<int>(r.windows));
  stage_->setText(tr("Finished in %1 s").arg(r.seconds + r.load_seconds, 0, 'f', 2));
  // A small table keeps the numbers aligned and readable at a glance.
  const QString row = "<tr><td style='padding-right:14px'>%1</td><td>%2</td></tr>";
  QString html = "<table>";
  html += row.arg(tr("Perplexity"), QString("<b style='font-size:large'>%1</b>").arg(r.perplexity, 0, 'f', 4));
  html += row.arg(tr("Mean loss"), QString::number(r.mean_loss, 'f', 4));
  html += row.arg(tr("Tokens"), grouped(r.text_tokens));
  html += row.arg(tr("Windows"), tr("%1 x %2 tokens").arg(grouped(r.windows), grouped(r.seq_len)));
  html += row.arg(tr("Seconds"), tr("%1 (+ %2 loading)").arg(r.seconds, 0, 'f', 2).arg(r.load_seconds, 0, 'f', 2));
  html += row.arg(tr("Tokens/s"), grouped(static_cast<std::int64_t>(r.tokens_per_second + 0.5)));
  html += row.arg(tr("Device"), QString::fromStdString(r.device + " " + r.dtype));
  html += "</table>";
  result_->setText(html);
}

void EvalPanel::showStopped(const QString& why) {
  progress_->setFormat(tr("stopped"));
  progress_->setRange(0, 1);
  progress_->setValue(0);
  stage_->setText(tr("Stopped"));
  result_->setText(why.toHtmlEscaped());
}

void EvalPanel::chooseTextFile() {
  const QString start = textPath().isEmpty() ? QString() : QFileInfo(textPath()).absolutePath();
  const QString path =
      QFileDialog::getOpenFileName(this, tr("Choose a text file"), start, tr("Text files (*.txt);;All files (*)"));
  if (!path.isEmpty()) setTextPath(path);
}

void EvalPanel::updateButtons() {
  run_->setEnabled(!running_ && model_ready_ && !textPath().isEmpty());
  cancel_->setEnabled(running_);
  for (QWidget* w : std::initializer_list<QWidget*>{text_path_, browse_, seq_len_, batch_, device_, dtype_})
    w->setEnabled(!running_);
}

}  // namespace tessera::widgets
