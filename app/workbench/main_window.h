#pragma once
// The workbench window. Left: the model and data panel, the run settings with presets and inline
// validation, and the run controls (tabs beside them: the model's architecture and a plain
// perplexity evaluation). Right: the four live plots (reconstruction loss, PAR hardening,
// perplexity of every run, memory), the comparison table of the session's runs beside the
// per-layer error heatmap, and the log. Every job runs in a `tessera worker` process on this
// machine or over SSH (the Worker box); "Compare baselines" queues RTN, AWQ, OmniQuant and
// TesseraQ with the same settings through the RunQueue.
// The session (runs, settings, results, curves) is saved to a session file and autosaved, so a
// closed window loses nothing.
#include <QMainWindow>
#include <QString>
#include <QTimer>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "api/job_types.h"
#include "metrics_store.h"
#include "run_controller.h"
#include "run_metrics_store.h"
#include "session_file.h"
#include "session_run.h"
#include "worker_endpoint.h"

class QComboBox;
class QLabel;
class QProgressBar;
class QTabWidget;

namespace tessera::widgets {
class ArchitectureView;
class DataPanel;
class EvalPanel;
class HardeningPlot;
class LayerHeatmap;
class LogPane;
class LossPlot;
class MemoryPlot;
class PerplexityPlot;
class QtLogSink;
class RunControls;
class RunPanel;
class RunTable;
class SessionPerplexityPlot;
class WorkerJob;
class WorkerPanel;
}  // namespace tessera::widgets

namespace tessera::workbench {

class EvalController;
class RunQueue;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // With dialogs off (offscreen, screenshots, tests) errors are logged only, never shown modally.
  void setDialogsEnabled(bool enabled) { dialogs_enabled_ = enabled; }

  // Where jobs run from now on (remembered); refreshes the device list from that worker.
  void setWorker(const widgets::WorkerEndpoint& endpoint);
  const widgets::WorkerEndpoint& worker() const { return worker_; }
  void refreshDevices();  // asks the worker for its devices (the Device box and the Worker box)

  // Each returns false after reporting the error (log, and a message box when dialogs are on).
  bool openModel(const QString& path);
  bool openTokenizer(const QString& path);
  void setTextPath(const QString& path);  // the evaluation text (both panels)
  void setCalibPath(const QString& path);
  // Reopens the last model, tokenizer and texts from QSettings (those that still exist) and the
  // autosaved session.
  void restoreSession();
  // Starts an evaluation with the panel's settings; false if it could not start.
  bool runEvaluation();

  // Quantization runs. Each returns false (reason reported) when it cannot start.
  bool startRun();          // one run with the run panel's settings
  bool compareBaselines();  // RTN, AWQ, OmniQuant, TesseraQ with the same settings, evaluated
  void pauseRun();
  void resumeRun();
  void cancelRun();  // also drops the rest of a baseline queue
  // Continues the selected cancelled or failed run from its last finished block.
  bool resumeSelectedRun();
  bool isBusy() const;  // a run, a queue or the reference evaluation is going
  // Where new run directories go (default: the application's data folder).
  void setRunsRoot(const QString& folder);

  bool saveSessionTo(const QString& path);
  bool openSessionFrom(const QString& path);
  // An existing run (on the worker's host), followed live through its events.jsonl while another
  // process is still writing it.
  bool addRunDirectory(const QString& run_dir);
  bool isFollowingRuns() const { return !following_.empty(); }  // an added run's events are still being read
  const std::vector<widgets::SessionRun>& sessionRuns() const;
  double referencePerplexity() const;
  // Overlays these runs in the plots (and, for two or more, diffs the last against the first in
  // the heatmap).
  void selectRuns(const std::vector<int>& ids);
  // Repaints everything from the stores now, without waiting for the timers (screenshots).
  void refreshAll();
  // Opens the export dialog / a layer's detail dialog (non-modal; returned for scripts and tests).
  QDialog* showExportDialog();
  QDialog* showLayerDetail(int run_id, std::int64_t block, const QString& layer);

  EvalController* evalController() const { return controller_; }
  RunController* runController() const { return run_controller_; }
  widgets::ArchitectureView* architectureView() const { return architecture_; }
  widgets::EvalPanel* evalPanel() const { return eval_panel_; }
  widgets::PerplexityPlot* perplexityPlot() const { return plot_; }
  widgets::LogPane* logPane() const { return log_pane_; }
  widgets::RunPanel* runPanel() const { return run_panel_; }
  widgets::RunTable* runTable() const { return run_table_; }
  widgets::LayerHeatmap* heatmap() const { return heatmap_; }
  widgets::LossPlot* lossPlot() const { return loss_plot_; }
  widgets::HardeningPlot* hardeningPlot() const { return hardening_plot_; }
  widgets::MemoryPlot* memoryPlot() const { return memory_plot_; }
  widgets::SessionPerplexityPlot* sessionPerplexityPlot() const { return session_ppl_; }
  std::shared_ptr<widgets::RunMetricsStore> runMetrics() const { return run_metrics_; }
  const std::optional<api::ModelSummary>& model() const { return model_; }
  QString tokenizerPath() const { return tokenizer_path_; }

 signals:
  void queueFinished();  // a baseline comparison (or single run) has ended, whichever way

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  void buildMenus();
  void buildCentralArea();
  void connectRunQueue();
  void chooseModelFile();
  void chooseModelFolder();
  void chooseTokenizer();
  void chooseSessionToOpen();
  void chooseSessionToSave();
  void chooseRunDirectory();
  void showAbout();
  void reportError(const QString& title, const QString& message, const QString& advice = QString());
  void updateTitle();
  QString dialogStartDir(const char* key) const;

  widgets::SessionRun* findRun(int id);
  bool enqueue(const std::vector<pipeline::RunConfig>& configs);
  // Replays the run's events.jsonl into its trace, live while its writer runs (a "follow" job).
  void followRun(int run_id, std::int64_t total_blocks);
  void stopFollowing();                    // ends every follow job (the session is being replaced)
  void updateRunViews();                   // table, plots' run lists, perplexity bars, heatmap
  void updateHeatmap(bool force = false);  // force: redraw even when no layer statistics arrived
  void updateStatus();                     // status bar from the running run's progress (timer)
  void updateRunControls();
  void syncDataPaths();
  widgets::Session currentSession() const;
  void autosave();
  QString autosavePath() const;

  std::shared_ptr<widgets::MetricsStore> metrics_;
  std::shared_ptr<widgets::RunMetricsStore> run_metrics_;
  std::shared_ptr<widgets::QtLogSink> log_sink_;
  EvalController* controller_ = nullptr;
  RunController* run_controller_ = nullptr;
  RunQueue* queue_ = nullptr;  // the session's runs
  widgets::ArchitectureView* architecture_ = nullptr;
  widgets::EvalPanel* eval_panel_ = nullptr;
  widgets::PerplexityPlot* plot_ = nullptr;
  widgets::LogPane* log_pane_ = nullptr;
  widgets::DataPanel* data_panel_ = nullptr;
  widgets::RunPanel* run_panel_ = nullptr;
  widgets::WorkerPanel* worker_panel_ = nullptr;
  widgets::WorkerJob* devices_job_ = nullptr;
  widgets::WorkerEndpoint worker_;
  widgets::RunControls* run_controls_ = nullptr;
  widgets::LossPlot* loss_plot_ = nullptr;
  widgets::HardeningPlot* hardening_plot_ = nullptr;
  widgets::MemoryPlot* memory_plot_ = nullptr;
  widgets::SessionPerplexityPlot* session_ppl_ = nullptr;
  widgets::LayerHeatmap* heatmap_ = nullptr;
  QComboBox* heatmap_metric_ = nullptr;
  widgets::RunTable* run_table_ = nullptr;
  QLabel* status_model_ = nullptr;
  QLabel* status_run_ = nullptr;
  QProgressBar* status_progress_ = nullptr;
  QTimer status_timer_;
  std::uint64_t heatmap_revision_ = 0;
  std::size_t heatmap_layers_ = 0;  // layer statistics drawn, over all runs

  std::optional<api::ModelSummary> model_;
  QString tokenizer_path_;  // "" = the one found beside the model
  std::vector<int> selected_;
  std::map<int, widgets::WorkerJob*> following_;  // added runs whose events.jsonl a "follow" job reads
  bool dialogs_enabled_ = true;
};

}  // namespace tessera::workbench
