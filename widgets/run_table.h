#pragma once
// The session's runs side by side: method, initialisation, bits, group, activation bits,
// calibration hash, perplexity, wall time, peak memory, export size and status. Rows can be
// multi-selected (the plots overlay the selected runs, the heatmap diffs two of them). Runs whose
// calibration data differs from the first finished run are flagged: their numbers do not compare.
#include <QTableWidget>
#include <vector>

#include "session_run.h"

namespace tessera::widgets {

class RunTable : public QTableWidget {
  Q_OBJECT

 public:
  enum Column { Name, Method, Init, WBits, Group, ABits, Calib, Ppl, Wall, PeakMem, ExportSize, Status, ColumnCount };

  explicit RunTable(QWidget* parent = nullptr);

  // Rebuilds the rows from `runs`, keeping the selection by run id.
  void setRuns(const std::vector<SessionRun>& runs);
  std::vector<int> selectedRunIds() const;  // in table order
  void selectRuns(const std::vector<int>& ids);
  // Whether the run's calibration hash differs from the reference run's (tests, tooltips).
  bool isCalibrationFlagged(int run_id) const;

 signals:
  void selectionChangedIds(const std::vector<int>& ids);

 private:
  std::vector<SessionRun> runs_;
  QString reference_hash_;
  bool rebuilding_ = false;
};

QString formatBytes(double bytes);
QString formatSeconds(double seconds);

}  // namespace tessera::widgets
