#include "export_dialog.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QVBoxLayout>
#include <algorithm>
#include <utility>
#include <vector>

#include "protocol/worker_protocol.h"
#include "qt_text.h"
#include "remote_fetch.h"
#include "run_table.h"
#include "worker_job.h"

namespace tessera::widgets {

namespace {}  // namespace

ExportDialog::ExportDialog(const std::vector<Choice>& runs, int preselected_run, const WorkerEndpoint& worker,
                           QWidget* parent, FormatLister lister)
    : QDialog(parent), runs_(runs), worker_(worker), lister_(std::move(lister)) {
  qRegisterMetaType<api::ExportResult>();
  if (!lister_)
    lister_ = [this](const std::string& run_dir) {
      return protocol::export_formats_from_json(WorkerJob::runToEnd(worker_, "export_formats", {{"run_dir", run_dir}}));
    };
  setWindowTitle(tr("Export a finished run"));
  run_ = new QComboBox;
  for (const Choice& c : runs_) run_->addItem(c.name, c.run_id);
  format_list_ = new QListWidget;
  format_list_->setMinimumHeight(120);
  format_list_->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Maximum);  // the result area takes the rest
  dtype_ = new QComboBox;
  dtype_->addItems({"fp16", "bf16", "fp32"});
  dtype_->setToolTip(
      tr("Float type of the tensors that are not integer codes (fake-quant weights, GPTQ/AWQ "
         "scales, layers written as floats); the GGUF formats fix their own types"));
  path_ = new QLineEdit;
  browse_ = new QPushButton(tr("..."));
  progress_ = new QProgressBar;
  progress_->setRange(0, 1);
  progress_->setValue(0);
  stage_ = new QLabel;
  result_ = new QLabel;
  result_->setWordWrap(true);
  result_->setAlignment(Qt::AlignTop | Qt::AlignLeft);
  result_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  export_ = new QPushButton(tr("Export"));
  export_->setDefault(true);
  cancel_ = new QPushButton(tr("Cancel export"));
  close_ = new QPushButton(tr("Close"));

  auto* path_row = new QHBoxLayout;
  path_row->addWidget(path_, 1);
  path_row->addWidget(browse_);
  auto* form = new QFormLayout;
  form->addRow(tr("Run"), run_);
  form->addRow(tr("Format"), format_list_);
  form->addRow(tr("Float type"), dtype_);
  form->addRow(tr("Output"), path_row);
  if (worker_.isRemote()) {
    // The export is written on the worker's host; it can also be brought back here.
    copy_back_ = new QCheckBox(tr("Copy to this machine"));
    copy_path_ = new QLineEdit;
    copy_path_->setPlaceholderText(tr("a new path on this machine"));
    auto* copy_row = new QHBoxLayout;
    copy_row->addWidget(copy_back_);
    copy_row->addWidget(copy_path_, 1);
    form->addRow(tr("Then"), copy_row);
    form->addRow(new QLabel(tr("Paths are on %1.").arg(worker_.describe())));
  }
  auto* buttons = new QHBoxLayout;
  buttons->addStretch();
  buttons->addWidget(export_);
  buttons->addWidget(cancel_);
  buttons->addWidget(close_);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addWidget(progress_);
  layout->addWidget(stage_);
  // The result can list many float layers: it scrolls instead of pushing the buttons away.
  auto* result_area = new QScrollArea;
  result_area->setWidget(result_);
  result_area->setWidgetResizable(true);
  result_area->setFrameShape(QFrame::NoFrame);
  layout->addWidget(result_area, 1);
  layout->addLayout(buttons);
  resize(640, 560);

  connect(run_, &QComboBox::currentIndexChanged, this, &ExportDialog::loadFormats);
  connect(format_list_, &QListWidget::currentItemChanged, this, &ExportDialog::suggestOutputPath);
  connect(browse_, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export to"), path_->text());
    if (!path.isEmpty()) path_->setText(path);
  });
  connect(export_, &QPushButton::clicked, this, &ExportDialog::startExport);
  connect(cancel_, &QPushButton::clicked, this, &ExportDialog::cancelExport);
  connect(close_, &QPushButton::clicked, this, &ExportDialog::reject);
  const int index = run_->findData(preselected_run);
  run_->setCurrentIndex(index >= 0 ? index : 0);
  loadFormats();
  setBusy(false);
}

int ExportDialog::currentRunId() const { return run_->currentData().toInt(); }

QString ExportDialog::currentRunDir() const {
  for (const Choice& c : runs_)
    if (c.run_id == currentRunId()) return c.run_dir;
  return QString();
}

void ExportDialog::loadFormats() {
  format_list_->clear();
  formats_.clear();
  const QString run_dir = currentRunDir();
  if (run_dir.isEmpty()) return;
  try {
    formats_ = lister_(utf8(run_dir));
  } catch (const std::exception& e) {
    result_->setText(tr("Cannot list the formats for %1: %2").arg(run_dir, QString::fromStdString(e.what())));
    return;
  }
  bool selected = false;
  for (const auto& f : formats_) {
    auto* item = new QListWidgetItem(format_list_);
    const QString label = QString::fromStdString(f.label);
    item->setData(Qt::UserRole, QString::fromStdString(f.id));
    if (f.available) {
      item->setText(label);
      if (!selected) {
        format_list_->setCurrentItem(item);
        selected = true;
      }
    } else {
      // Greyed out and not selectable, with the reason in the row itself and its tooltip.
      item->setText(tr("%1  -  %2").arg(label, QString::fromStdString(f.reason)));
      item->setFlags(item->flags() & ~(Qt::ItemIsEnabled | Qt::ItemIsSelectable));
      item->setToolTip(QString::fromStdString(f.reason));
    }
  }
  suggestOutputPath();
}

void ExportDialog::suggestOutputPath() {
  const QString run_dir = currentRunDir();
  if (run_dir.isEmpty()) return;
  const auto* item = format_list_->currentItem();
  const bool one_file = item && item->data(Qt::UserRole).toString().startsWith("gguf-");
  const QString suggestion = run_dir + (one_file ? "-export.gguf" : "-export");
  if (path_->text().isEmpty() || path_->text() == suggested_path_) path_->setText(suggestion);
  suggested_path_ = suggestion;
}

bool ExportDialog::isFormatAvailable(const QString& id) const {
  for (const auto& f : formats_)
    if (QString::fromStdString(f.id) == id) return f.available;
  return false;
}

QString ExportDialog::formatReason(const QString& id) const {
  for (const auto& f : formats_)
    if (QString::fromStdString(f.id) == id) return QString::fromStdString(f.reason);
  return QString();
}

bool ExportDialog::selectFormat(const QString& id) {
  for (int i = 0; i < format_list_->count(); ++i) {
    auto* item = format_list_->item(i);
    if (item->data(Qt::UserRole).toString() == id && (item->flags() & Qt::ItemIsEnabled)) {
      format_list_->setCurrentItem(item);
      return true;
    }
  }
  return false;
}

void ExportDialog::setOutputPath(const QString& path) { path_->setText(path); }

bool ExportDialog::selectRun(int run_id) {
  const int index = run_->findData(run_id);
  if (index < 0) return false;
  run_->setCurrentIndex(index);
  return true;
}
QString ExportDialog::resultText() const { return result_->text(); }

void ExportDialog::setBusy(bool busy) {
  export_->setEnabled(!busy && !runs_.empty());
  cancel_->setEnabled(busy);
  run_->setEnabled(!busy);
  format_list_->setEnabled(!busy);
  dtype_->setEnabled(!busy);
  path_->setEnabled(!busy);
  browse_->setEnabled(!busy);
}

bool ExportDialog::startExport() {
  if (job_) return false;
  const auto* item = format_list_->currentItem();
  const QString run_dir = currentRunDir();
  if (run_dir.isEmpty() || !item || !(item->flags() & Qt::ItemIsEnabled)) {
    result_->setText(tr("Choose a finished run and an available format."));
    return false;
  }
  if (path_->text().trimmed().isEmpty()) {
    result_->setText(tr("Choose where to write the export."));
    return false;
  }
  api::ExportRequest request;
  request.run_dir = utf8(run_dir);
  request.out = utf8(path_->text().trimmed());
  request.format = utf8(item->data(Qt::UserRole).toString());
  request.dtype = utf8(dtype_->currentText());
  const int id = currentRunId();
  result_->setStyleSheet(QString());
  result_->setText(QString());
  progress_->setRange(0, 0);  // busy until the first progress report
  stage_->setText(tr("Starting..."));
  setBusy(true);
  job_ = new WorkerJob(worker_, "export", {{"request", protocol::to_json(request)}}, this);
  connect(job_, &WorkerJob::progress, this, [this](const QString& stage, qint64 done, qint64 total, double) {
    progress_->setRange(0, static_cast<int>(std::max<qint64>(1, total)));
    progress_->setValue(static_cast<int>(done));
    stage_->setText(stage);
  });
  connect(job_, &WorkerJob::succeeded, this, [this, id](const protocol::Json& json) {
    api::ExportResult r;
    try {
      r = protocol::export_result_from_json(json);
    } catch (const std::exception& e) {
      finishJob(/*written=*/false);
      result_->setText(tr("The worker's answer is malformed: %1").arg(QString::fromUtf8(e.what())));
      emit exportFailed(id, result_->text());
      return;
    }
    finishJob(/*written=*/true);
    QString text = tr("Written %1 (%2).\nSelf-check: %3")
                       .arg(QString::fromStdString(r.path), formatBytes(static_cast<double>(r.bytes)),
                            QString::fromStdString(r.self_check));
    // Notes first: they change what the export is; the list of float layers can be long.
    for (const auto& w : r.warnings) text += tr("\nNote: %1").arg(QString::fromStdString(w));
    if (!r.not_converted.empty()) {
      QStringList layers;
      for (const auto& l : r.not_converted) layers << QString::fromStdString(l);
      // Each entry is "layer: why the format cannot hold it".
      text += tr("\nNot converted (written as dequantized floats):\n%1").arg(layers.join("\n"));
    }
    if (!r.fallbacks.empty()) {  // llama.cpp's per-tensor fallback types of a GGUF k-quant, bit-exact too
      // One line per type and reason (a model's layers of one width share both), then its tensors.
      std::vector<std::pair<QString, QStringList>> groups;
      for (const auto& t : r.fallbacks) {
        const QString head = QString("%1, %2").arg(QString::fromStdString(t.type), QString::fromStdString(t.reason));
        auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == head; });
        if (it == groups.end()) it = groups.insert(groups.end(), {head, {}});
        it->second << QString::fromStdString(t.tensor);
      }
      text += tr("\nIn llama.cpp's fallback types:");
      for (const auto& [head, tensors] : groups)
        text += QString("\n%1 (%2): %3")
                    .arg(head, tensors.size() == 1 ? tr("1 tensor") : tr("%1 tensors").arg(tensors.size()),
                         tensors.join(", "));
    }
    result_->setText(text);
    result_->setStyleSheet("color: #2e7d32;");
    stage_->setText(tr("Done"));
    emit exported(id, r);
    if (copy_back_ && copy_back_->isChecked()) copyBack(QString::fromStdString(r.path));
  });
  connect(job_, &WorkerJob::cancelled, this, [this, id] {
    finishJob(/*written=*/false);
    result_->setText(tr("Cancelled: nothing was written."));
    stage_->setText(QString());
    emit exportCancelled(id);
  });
  connect(job_, &WorkerJob::failed, this, [this, id](const QString& message) {
    finishJob(/*written=*/false);
    result_->setText(tr("Export failed: %1\nNothing was left at the output path. Check the path and the "
                        "free space, or choose another format.")
                         .arg(message));
    result_->setStyleSheet("color: #c62828;");
    stage_->setText(QString());
    emit exportFailed(id, message);
  });
  job_->start();
  return true;
}

void ExportDialog::setCopyBack(const QString& local_path) {
  if (!copy_back_) return;
  copy_back_->setChecked(!local_path.isEmpty());
  copy_path_->setText(local_path);
}

void ExportDialog::copyBack(const QString& remote_path) {
  const QString local = copy_path_->text().trimmed();
  if (local.isEmpty()) {
    result_->setText(result_->text() + tr("\nNot copied: choose where on this machine."));
    return;
  }
  fetch_ = new RemoteFetch(worker_, remote_path, local, this);
  setBusy(true);
  progress_->setRange(0, 0);
  stage_->setText(tr("Copying to this machine..."));
  auto done = [this] {
    fetch_->deleteLater();
    fetch_ = nullptr;
    setBusy(false);
    progress_->setRange(0, 1);
  };
  connect(fetch_, &RemoteFetch::progress, this, [this](qint64 copied, qint64 total) {
    progress_->setRange(0, 1000);
    progress_->setValue(total > 0 ? static_cast<int>(1000 * copied / total) : 0);
  });
  connect(fetch_, &RemoteFetch::finished, this, [this, done](const QString& path, qint64 bytes) {
    done();
    progress_->setValue(1);
    stage_->setText(tr("Done"));
    result_->setText(result_->text() + tr("\nCopied to %1 (%2).").arg(path, formatBytes(static_cast<double>(bytes))));
    emit copiedBack(path);
  });
  connect(fetch_, &RemoteFetch::failed, this, [this, done](const QString& message) {
    done();
    stage_->setText(QString());
    result_->setText(result_->text() + tr("\nNot copied to this machine: %1").arg(message));
    emit copyFailed(message);
  });
  connect(fetch_, &RemoteFetch::cancelled, this, [this, done] {
    done();
    stage_->setText(QString());
    result_->setText(result_->text() + tr("\nCopy cancelled: nothing was written on this machine."));
    emit copyFailed(tr("cancelled"));
  });
  fetch_->start();
}

void ExportDialog::cancelExport() {
  if (fetch_) {
    fetch_->cancel();
    stage_->setText(tr("Cancelling..."));
    return;
  }
  if (job_) {
    job_->cancel();
    stage_->setText(tr("Cancelling..."));
  }
}

void ExportDialog::finishJob(bool written) {
  job_->release();  // deleted once its worker has exited
  job_ = nullptr;
  progress_->setRange(0, 1);
  progress_->setValue(written ? 1 : 0);
  setBusy(false);
}

void ExportDialog::reject() {
  if (job_ || fetch_) {
    cancelExport();
    return;  // closes once cancelled; the user sees "Cancelled: nothing was written"
  }
  QDialog::reject();
}

}  // namespace tessera::widgets
