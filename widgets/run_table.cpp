#include "run_table.h"

#include <QHeaderView>
#include <algorithm>

#include "methods/method_registry.h"
#include "run_plot.h"

namespace tessera::widgets {

QString formatBytes(double bytes) {
  if (bytes <= 0) return QString();
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return QString("%1 %2").arg(bytes, 0, 'f', u == 0 ? 0 : 1).arg(units[u]);
}

QString formatSeconds(double seconds) {
  if (seconds <= 0) return QString();
  if (seconds < 60) return QString("%1 s").arg(seconds, 0, 'f', 1);
  const int s = static_cast<int>(seconds + 0.5);
  return s < 3600 ? QString("%1:%2 min").arg(s / 60).arg(s % 60, 2, 10, QChar('0'))
                  : QString("%1:%2 h").arg(s / 3600).arg((s % 3600) / 60, 2, 10, QChar('0'));
}

RunTable::RunTable(QWidget* parent) : QTableWidget(parent) {
  setColumnCount(ColumnCount);
  setHorizontalHeaderLabels({tr("Run"), tr("Method"), tr("Init"), tr("W bits"), tr("Group"), tr("A bits"),
                             tr("Calib hash"), tr("PPL"), tr("Wall time"), tr("Peak mem"), tr("Export"), tr("Status")});
  setSelectionBehavior(QAbstractItemView::SelectRows);
  setSelectionMode(QAbstractItemView::ExtendedSelection);
  setEditTriggers(QAbstractItemView::NoEditTriggers);
  verticalHeader()->setVisible(false);
  verticalHeader()->setDefaultSectionSize(fontMetrics().height() + 6);
  horizontalHeader()->setStretchLastSection(true);
  horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  setAlternatingRowColors(true);
  setWordWrap(false);
  connect(this, &QTableWidget::itemSelectionChanged, this, [this] {
    if (!rebuilding_) emit selectionChangedIds(selectedRunIds());
  });
}

void RunTable::setRuns(const std::vector<SessionRun>& runs) {
  const std::vector<int> selected = selectedRunIds();
  rebuilding_ = true;
  runs_ = runs;
  // The reference calibration: the first finished run's (else the first run's that has one).
  reference_hash_.clear();
  for (const auto& r : runs_)
    if (r.finished() && !r.calibration_sha256.isEmpty()) {
      reference_hash_ = r.calibration_sha256;
      break;
    }
  if (reference_hash_.isEmpty())
    for (const auto& r : runs_)
      if (!r.calibration_sha256.isEmpty()) {
        reference_hash_ = r.calibration_sha256;
        break;
      }
  setRowCount(static_cast<int>(runs_.size()));
  for (int row = 0; row < static_cast<int>(runs_.size()); ++row) {
    const SessionRun& r = runs_[static_cast<std::size_t>(row)];
    const auto& c = r.config;
    // The method it starts from, for methods that have one (TesseraQ's init).
    const auto* m = methods::find_method(c.method);
    const bool has_init = m && !m->init_setting.empty();
    const QString cells[ColumnCount] = {
        QString("#%1").arg(r.id),  // the plots' legends carry the full name
        QString::fromStdString(c.method),
        has_init ? QString::fromStdString(c.settings.text(c.method, m->init_setting)) : QStringLiteral("-"),
        QString::number(c.weight.bits),
        c.weight.group_size > 0 ? QString::number(c.weight.group_size) : tr("channel"),
        c.act_bits ? QString::number(c.act_bits) : tr("16"),
        r.calibration_sha256.left(12),
        r.perplexity > 0 ? QString::number(r.perplexity, 'f', 3) : QString(),
        formatSeconds(r.seconds),
        formatBytes(r.peak_memory_bytes),
        formatBytes(static_cast<double>(r.export_bytes)),
        statusName(r.status)};
    for (int col = 0; col < ColumnCount; ++col) {
      auto* item = new QTableWidgetItem(cells[col]);
      item->setData(Qt::UserRole, r.id);
      if (col >= WBits && col != Calib && col != Status) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
      setItem(row, col, item);
    }
    if (r.status == SessionRun::Status::Failed) {
      item(row, Status)->setForeground(QColor(0xc6, 0x28, 0x28));
      item(row, Status)->setToolTip(r.error);
      item(row, Name)->setToolTip(r.name + ": " + r.error);
    }
    item(row, Name)->setForeground(methodColor(QString::fromStdString(c.method)).darker(115));
    if (isCalibrationFlagged(r.id)) {
      auto* cell = item(row, Calib);
      cell->setText(cell->text() + QStringLiteral(" \u26A0"));
      cell->setBackground(QColor(0xff, 0xe0, 0x82));
      cell->setToolTip(tr("Calibrated on different data than the first finished run (%1...): "
                          "its numbers do not compare with the others.")
                           .arg(reference_hash_.left(12)));
    } else if (!r.calibration_sha256.isEmpty()) {
      item(row, Calib)->setToolTip(tr("SHA-256 of the calibration token ids: %1").arg(r.calibration_sha256));
    }
    if (item(row, Name)->toolTip().isEmpty())
      item(row, Name)->setToolTip(r.name + (r.run_dir.isEmpty() ? QString() : "\n" + r.run_dir));
  }
  selectRuns(selected);
  rebuilding_ = false;
}

std::vector<int> RunTable::selectedRunIds() const {
  std::vector<int> ids;
  for (int row = 0; row < rowCount(); ++row)
    if (item(row, Name) && item(row, Name)->isSelected()) ids.push_back(item(row, Name)->data(Qt::UserRole).toInt());
  return ids;
}

void RunTable::selectRuns(const std::vector<int>& ids) {
  const bool was = rebuilding_;
  rebuilding_ = true;
  clearSelection();
  for (int row = 0; row < rowCount(); ++row) {
    const int id = item(row, Name)->data(Qt::UserRole).toInt();
    if (std::find(ids.begin(), ids.end(), id) != ids.end())
      for (int col = 0; col < ColumnCount; ++col) item(row, col)->setSelected(true);
  }
  rebuilding_ = was;
  if (!rebuilding_) emit selectionChangedIds(selectedRunIds());
}

bool RunTable::isCalibrationFlagged(int run_id) const {
  for (const auto& r : runs_)
    if (r.id == run_id)
      return !r.calibration_sha256.isEmpty() && !reference_hash_.isEmpty() && r.calibration_sha256 != reference_hash_;
  return false;
}

}  // namespace tessera::widgets
