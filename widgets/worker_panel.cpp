#include "worker_panel.h"

#include <QComboBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>

namespace tessera::widgets {

namespace {
QString gib(double bytes) { return QString::number(bytes / (1024.0 * 1024.0 * 1024.0), 'f', 1) + " GiB"; }
}  // namespace

QString describeDevice(const api::DeviceInfo& d) {
  QString text = QString::fromStdString(d.id) + "  " + QString::fromStdString(d.name);
  if (d.cores > 0) text += QObject::tr(", %1 cores").arg(d.cores);
  if (d.total_bytes > 0) text += QObject::tr(", %1 (%2 free)").arg(gib(d.total_bytes), gib(d.free_bytes));
  return text;
}

WorkerPanel::WorkerPanel(QWidget* parent) : QGroupBox(tr("Worker"), parent) {
  kind_ = new QComboBox;
  kind_->addItem(tr("This machine"), "local");
  kind_->addItem(tr("Over SSH"), "ssh");
  ssh_ = new QLineEdit;
  ssh_->setPlaceholderText(tr("ssh [-p port] [user@]host"));
  ssh_->setToolTip(tr("The ssh command line that reaches the GPU server; keys only (no password prompt)"));
  program_ = new QLineEdit;
  check_ = new QPushButton(tr("Check"));
  check_->setToolTip(tr("Start the worker and list its devices"));
  devices_ = new QLabel;
  devices_->setWordWrap(true);
  devices_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  auto* kind_row = new QHBoxLayout;
  kind_row->addWidget(kind_, 1);
  kind_row->addWidget(check_);
  auto* form = new QFormLayout(this);
  form->addRow(tr("Runs on"), kind_row);
  form->addRow(tr("SSH"), ssh_);
  form->addRow(tr("tessera"), program_);
  form->addRow(devices_);

  connect(kind_, &QComboBox::currentIndexChanged, this, [this] {
    updateFields();
    emit endpointChanged(endpoint());
  });
  for (QLineEdit* edit : {ssh_, program_})
    connect(edit, &QLineEdit::editingFinished, this, [this] { emit endpointChanged(endpoint()); });
  connect(check_, &QPushButton::clicked, this, &WorkerPanel::checkRequested);
  updateFields();
}

void WorkerPanel::updateFields() {
  const bool remote = kind_->currentData().toString() == "ssh";
  ssh_->setEnabled(remote);
  program_->setPlaceholderText(remote ? tr("tessera (on the remote PATH), or its path there")
                                      : tr("%1 (beside the workbench)").arg(defaultLocalProgram()));
  program_->setToolTip(remote ? tr("Path of the tessera program on the remote host")
                              : tr("Path of the tessera program to run jobs with, e.g. a CUDA build"));
}

WorkerEndpoint WorkerPanel::endpoint() const {
  WorkerEndpoint e;
  e.kind = kind_->currentData().toString() == "ssh" ? WorkerEndpoint::Kind::Ssh : WorkerEndpoint::Kind::Local;
  e.program = program_->text().trimmed();
  e.ssh_command = ssh_->text().trimmed();
  return e;
}

void WorkerPanel::setEndpoint(const WorkerEndpoint& e) {
  const QSignalBlocker block(kind_);
  kind_->setCurrentIndex(e.isRemote() ? 1 : 0);
  program_->setText(e.program);
  ssh_->setText(e.ssh_command);
  updateFields();
}

void WorkerPanel::showChecking() {
  devices_->setStyleSheet(QString());
  devices_->setText(tr("Starting the worker at %1...").arg(endpoint().describe()));
}

void WorkerPanel::showDevices(const std::vector<api::DeviceInfo>& devices) {
  QStringList lines;
  for (const auto& d : devices) lines << describeDevice(d);
  devices_->setStyleSheet(QString());
  devices_->setText(lines.join("\n"));
}

void WorkerPanel::showError(const QString& message) {
  devices_->setStyleSheet("color: #c62828;");
  devices_->setText(message);
}

}  // namespace tessera::widgets
