#pragma once
// Export of a finished run: choose the run, a format (the list the run's worker returns for that
// run; formats that cannot hold it exactly are greyed out with the reason), the dtype and the
// output path (on the worker's host); Export runs an "export" job in a worker with a progress bar,
// Cancel stops it (the core writes to a temporary path and renames only on success, so nothing is
// left behind), and the self-check result, size and unconverted layers are shown when it ends.
#include <QDialog>
#include <QString>
#include <functional>
#include <vector>

#include "api/job_types.h"
#include "worker_endpoint.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QProgressBar;
class QPushButton;

namespace tessera::widgets {

class RemoteFetch;
class WorkerJob;

class ExportDialog : public QDialog {
  Q_OBJECT

 public:
  struct Choice {
    int run_id = 0;
    QString name, run_dir;
  };

  // Lists the formats for a run directory: the worker's "export_formats" unless a test injects one.
  using FormatLister = std::function<std::vector<api::ExportFormatInfo>(const std::string& run_dir)>;

  ExportDialog(const std::vector<Choice>& runs, int preselected_run, const WorkerEndpoint& worker,
               QWidget* parent = nullptr, FormatLister lister = {});

  // For tests and scripts.
  bool selectRun(int run_id);
  void setOutputPath(const QString& path);
  bool selectFormat(const QString& id);  // false when missing or greyed out
  bool isFormatAvailable(const QString& id) const;
  QString formatReason(const QString& id) const;
  bool isExporting() const { return job_ != nullptr || fetch_ != nullptr; }
  // With a worker on another host: after the export, copy it to `local_path` on this machine
  // ("" = do not copy).
  void setCopyBack(const QString& local_path);
  QString resultText() const;

 public slots:
  bool startExport();  // false (reason shown) when something is missing
  void cancelExport();

 signals:
  void exported(int run_id, const tessera::api::ExportResult& result);
  void exportFailed(int run_id, const QString& message);
  void exportCancelled(int run_id);
  void copiedBack(const QString& local_path);  // the export was copied to this machine
  void copyFailed(const QString& message);

 protected:
  void reject() override;  // Close/Escape during an export cancels it first

 private:
  void loadFormats();
  // Puts "<run dir>-export" (a folder) or "<run dir>-export.gguf" (gguf-* write one file) in the
  // output field, unless the user typed a path of their own there.
  void suggestOutputPath();
  void setBusy(bool busy);
  void finishJob(bool written);  // written: the progress bar ends full
  void copyBack(const QString& remote_path);
  int currentRunId() const;
  QString currentRunDir() const;  // "" when no run is chosen

  std::vector<Choice> runs_;
  WorkerEndpoint worker_;
  FormatLister lister_;
  std::vector<api::ExportFormatInfo> formats_;
  QComboBox* run_ = nullptr;
  QListWidget* format_list_ = nullptr;
  QComboBox* dtype_ = nullptr;
  QLineEdit* path_ = nullptr;
  QPushButton* browse_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* stage_ = nullptr;
  QLabel* result_ = nullptr;
  QPushButton* export_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QPushButton* close_ = nullptr;
  WorkerJob* job_ = nullptr;        // the running export
  RemoteFetch* fetch_ = nullptr;    // the running copy to this machine
  QCheckBox* copy_back_ = nullptr;  // with a remote worker only
  QLineEdit* copy_path_ = nullptr;
  QString suggested_path_;  // the last suggestion suggestOutputPath put in path_
};

}  // namespace tessera::widgets

Q_DECLARE_METATYPE(tessera::api::ExportResult)
