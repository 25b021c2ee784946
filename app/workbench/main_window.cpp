#include "main_window.h"

#include <QCloseEvent>
#include <QComboBox>
#include <QDateTime>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QGridLayout>
#include <QJsonDocument>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QProgressBar>
#include <QScrollArea>
#include <QSettings>
#include <QSplitter>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTabWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <map>

#include "architecture_view.h"
#include "data_panel.h"
#include "eval_controller.h"
#include "eval_panel.h"
#include "export_dialog.h"
#include "hardening_plot.h"
#include "layer_detail_dialog.h"
#include "layer_heatmap.h"
#include "log_pane.h"
#include "loss_plot.h"
#include "memory_plot.h"
#include "methods/method_registry.h"
#include "perplexity_plot.h"
#include "protocol/worker_protocol.h"
#include "qt_log_sink.h"
#include "qt_text.h"
#include "run_controls.h"
#include "run_event_recorder.h"
#include "run_panel.h"
#include "run_plot.h"
#include "run_queue.h"
#include "run_stats_reader.h"
#include "run_table.h"
#include "session_perplexity_plot.h"
#include "util/error.h"
#include "util/log.h"
#include "util/version.h"
#include "worker_job.h"
#include "worker_panel.h"

namespace tessera::workbench {
namespace {

// QSettings keys. Paths are remembered so that the next session and the file dialogs start where
// the user left off.
constexpr const char* kLastModel = "session/model";
constexpr const char* kLastTokenizer = "session/tokenizer";
constexpr const char* kLastText = "session/text";
constexpr const char* kLastCalib = "session/calib";
constexpr const char* kLastSessionFile = "session/file";
constexpr const char* kLastRunConfig = "session/run_config";
constexpr const char* kLastWorker = "session/worker";

using widgets::utf8;

// "tesseraq #4": short enough for the heatmap's title and colour-scale label.
QString shortName(const widgets::SessionRun& r) {
  return QString("%1 #%2").arg(QString::fromStdString(r.config.method)).arg(r.id);
}

}  // namespace

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent),
      metrics_(std::make_shared<widgets::MetricsStore>()),
      run_metrics_(std::make_shared<widgets::RunMetricsStore>()) {
  controller_ = new EvalController(metrics_, this);
  run_controller_ = new RunController(run_metrics_, this);
  queue_ = new RunQueue(run_controller_, controller_, this);
  queue_->setRunsRoot(QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation) + "/runs");
  buildCentralArea();
  buildMenus();

  status_run_ = new QLabel(this);
  status_progress_ = new QProgressBar(this);
  status_progress_->setMaximumWidth(200);
  status_progress_->setRange(0, 1000);
  status_progress_->setTextVisible(true);
  status_progress_->setVisible(false);
  status_model_ = new QLabel(this);
  statusBar()->addPermanentWidget(status_run_);
  statusBar()->addPermanentWidget(status_progress_);
  statusBar()->addPermanentWidget(status_model_);
  statusBar()->showMessage(tr("Open a model to begin (File > Open Model File...)"));

  // Core log lines (from any thread) reach the pane through the sink's queued signal.
  log_sink_ = std::make_shared<widgets::QtLogSink>();
  connect(log_sink_.get(), &widgets::QtLogSink::lineLogged, log_pane_, &widgets::LogPane::appendLine);
  tessera::logger()->sinks().push_back(log_sink_);

  connect(eval_panel_, &widgets::EvalPanel::runRequested, this, &MainWindow::runEvaluation);
  connect(eval_panel_, &widgets::EvalPanel::cancelRequested, controller_, &EvalController::cancel);
  connect(eval_panel_, &widgets::EvalPanel::textPathChanged, this, [this](const QString& path) {
    QSettings().setValue(kLastText, path);
    if (data_panel_->evalTextPath() != path) data_panel_->setEvalTextPath(path);
  });
  connect(eval_panel_, &widgets::EvalPanel::runtimeChanged, architecture_, &widgets::ArchitectureView::setRuntime);

  connect(controller_, &EvalController::started, this, [this] {
    eval_panel_->setRunning(true);
    statusBar()->showMessage(queue_->isReferencePending() ? tr("Evaluating the unquantized model...")
                                                          : tr("Evaluating..."));
  });
  connect(controller_, &EvalController::progress, this, [this](const api::EvalProgress& p) {
    // One line per stage; per-window progress goes to the bar and the plot, not the log.
    if (p.stage == "loading") tessera::logger()->info("loading the model and tokenizer");
    if (p.stage == "tokenizing") tessera::logger()->info("tokenizing the text");
    eval_panel_->showProgress(p);
    if (p.stage == "evaluating") plot_->setTotalWindows(p.windows_total);
  });
  connect(controller_, &EvalController::finished, this, [this](const api::EvalReport& r) {
    eval_panel_->setRunning(false);
    eval_panel_->showResult(r);
    plot_->showFinal(r.perplexity);
    statusBar()->showMessage(tr("Perplexity %1 on %2")
                                 .arg(r.perplexity, 0, 'f', 4)
                                 .arg(QFileInfo(QString::fromStdString(r.text_path)).fileName()));
    // The unquantized model's perplexity is the reference line of the comparison chart (the run
    // queue also takes it from the evaluation it started before a comparison).
    queue_->setReference(r.perplexity, QString::fromStdString(r.text_path));
  });
  auto eval_stopped = [this](const QString& why, bool failed, const QString& message) {
    eval_panel_->setRunning(false);
    eval_panel_->showStopped(why);
    plot_->showStopped(failed ? tr("the evaluation failed (see the log)")
                              : tr("cancelled; windows evaluated: %1").arg(plot_->pointCount()));
    statusBar()->showMessage(failed ? tr("Evaluation failed") : tr("Evaluation cancelled"));
    // The reference evaluation before a comparison: the run queue goes on (or stops) by itself.
    if (failed && !queue_->isBusy())
      reportError(tr("Evaluation failed"), message, tr("Check the model, tokenizer and text files."));
  };
  connect(controller_, &EvalController::cancelled, this, [this, eval_stopped] {
    tessera::logger()->warn("evaluation cancelled");
    eval_stopped(tr("Cancelled."), false, QString());
  });
  connect(controller_, &EvalController::failed, this,
          [this, eval_stopped](const QString& message) { eval_stopped(tr("Failed: %1").arg(message), true, message); });
  connectRunQueue();

  status_timer_.setInterval(100);
  connect(&status_timer_, &QTimer::timeout, this, &MainWindow::updateStatus);
  status_timer_.start();

  resize(1280, 800);
  updateTitle();
  updateRunControls();
}

MainWindow::~MainWindow() {
  // End the jobs (their workers are told to stop) before unhooking the log sink.
  stopFollowing();
  delete run_controller_;
  run_controller_ = nullptr;
  delete controller_;
  controller_ = nullptr;
  auto& sinks = tessera::logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), log_sink_), sinks.end());
}

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  QAction* open_file = file->addAction(tr("Open Model &File..."), this, &MainWindow::chooseModelFile);
  open_file->setShortcut(QKeySequence::Open);
  file->addAction(tr("Open Model F&older..."), this, &MainWindow::chooseModelFolder);
  file->addAction(tr("Open &Tokenizer..."), this, &MainWindow::chooseTokenizer);
  file->addSeparator();
  file->addAction(tr("Open &Session..."), this, &MainWindow::chooseSessionToOpen);
  QAction* save = file->addAction(tr("&Save Session As..."), this, &MainWindow::chooseSessionToSave);
  save->setShortcut(QKeySequence::Save);
  file->addAction(tr("Add Run &Directory..."), this, &MainWindow::chooseRunDirectory);
  file->addSeparator();
  file->addAction(tr("&Export Run..."), this, &MainWindow::showExportDialog);
  file->addSeparator();
  QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  QMenu* run = menuBar()->addMenu(tr("&Run"));
  run->addAction(tr("&Start"), this, &MainWindow::startRun);
  run->addAction(tr("&Compare Baselines"), this, &MainWindow::compareBaselines);
  run->addAction(tr("&Pause"), this, &MainWindow::pauseRun);
  run->addAction(tr("&Resume"), this, &MainWindow::resumeRun);
  run->addAction(tr("C&ancel"), this, &MainWindow::cancelRun);
  run->addSeparator();
  run->addAction(tr("Resume Selected Run from its Last &Block"), this, &MainWindow::resumeSelectedRun);

  QMenu* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&About Tessera Workbench"), this, &MainWindow::showAbout);
}

void MainWindow::buildCentralArea() {
  architecture_ = new widgets::ArchitectureView(this);
  eval_panel_ = new widgets::EvalPanel(this);
  plot_ = new widgets::PerplexityPlot(metrics_, this);
  log_pane_ = new widgets::LogPane(this);
  data_panel_ = new widgets::DataPanel(this);
  run_panel_ = new widgets::RunPanel(this);
  run_controls_ = new widgets::RunControls(this);
  worker_panel_ = new widgets::WorkerPanel(this);
  loss_plot_ = new widgets::LossPlot(run_metrics_, this);
  hardening_plot_ = new widgets::HardeningPlot(run_metrics_, this);
  memory_plot_ = new widgets::MemoryPlot(run_metrics_, this);
  session_ppl_ = new widgets::SessionPerplexityPlot(this);
  heatmap_ = new widgets::LayerHeatmap(this);
  run_table_ = new widgets::RunTable(this);

  // Left: what to quantize and how, in a scroll area so that small screens reach every field.
  auto* run_page = new QWidget;
  auto* run_layout = new QVBoxLayout(run_page);
  run_layout->setContentsMargins(4, 4, 4, 4);
  run_layout->addWidget(worker_panel_);
  run_layout->addWidget(data_panel_);
  run_layout->addWidget(run_panel_);
  run_layout->addWidget(run_controls_);
  run_layout->addStretch();
  auto* run_scroll = new QScrollArea;
  run_scroll->setWidget(run_page);
  run_scroll->setWidgetResizable(true);
  run_scroll->setFrameShape(QFrame::NoFrame);
  auto* eval_page = new QSplitter(Qt::Vertical);
  eval_page->addWidget(eval_panel_);
  eval_page->addWidget(plot_);
  auto* left_tabs = new QTabWidget;
  left_tabs->addTab(run_scroll, tr("Quantize"));
  left_tabs->addTab(architecture_, tr("Model"));
  left_tabs->addTab(eval_page, tr("Evaluate"));

  // Right: four plots, then the table beside the heatmap, then the log.
  auto* plots = new QWidget;
  auto* grid = new QGridLayout(plots);
  grid->setContentsMargins(0, 0, 0, 0);
  grid->setSpacing(4);
  grid->addWidget(loss_plot_, 0, 0);
  grid->addWidget(hardening_plot_, 0, 1);
  grid->addWidget(session_ppl_, 1, 0);
  grid->addWidget(memory_plot_, 1, 1);

  heatmap_metric_ = new QComboBox;
  for (auto m : {widgets::LayerHeatmap::Metric::OutputMse, widgets::LayerHeatmap::Metric::RelWeightError,
                 widgets::LayerHeatmap::Metric::FlipRatio, widgets::LayerHeatmap::Metric::DstSpread})
    heatmap_metric_->addItem(widgets::LayerHeatmap::metricName(m), static_cast<int>(m));
  auto* heat_box = new QWidget;
  auto* heat_layout = new QVBoxLayout(heat_box);
  heat_layout->setContentsMargins(0, 0, 0, 0);
  auto* metric_row = new QHBoxLayout;
  metric_row->addWidget(new QLabel(tr("Metric")));
  metric_row->addWidget(heatmap_metric_, 1);
  heat_layout->addLayout(metric_row);
  heat_layout->addWidget(heatmap_, 1);

  auto* compare = new QSplitter(Qt::Horizontal);
  compare->addWidget(run_table_);
  compare->addWidget(heat_box);
  compare->setStretchFactor(0, 3);
  compare->setStretchFactor(1, 2);

  auto* right = new QSplitter(Qt::Vertical);
  right->addWidget(plots);
  right->addWidget(compare);
  right->addWidget(log_pane_);
  right->setStretchFactor(0, 5);
  right->setStretchFactor(1, 3);
  right->setStretchFactor(2, 1);
  right->setSizes({480, 260, 90});

  auto* central = new QSplitter(Qt::Horizontal, this);
  central->addWidget(left_tabs);
  central->addWidget(right);
  central->setStretchFactor(0, 0);
  central->setStretchFactor(1, 1);
  central->setSizes({340, 940});
  central->setContentsMargins(6, 6, 6, 0);
  setCentralWidget(central);

  connect(data_panel_, &widgets::DataPanel::modelBrowseRequested, this, &MainWindow::chooseModelFile);
  connect(data_panel_, &widgets::DataPanel::tokenizerBrowseRequested, this, &MainWindow::chooseTokenizer);
  connect(data_panel_, &widgets::DataPanel::calibPathChanged, this, [this](const QString& path) {
    QSettings().setValue(kLastCalib, path);
    syncDataPaths();
  });
  connect(data_panel_, &widgets::DataPanel::evalTextPathChanged, this, [this](const QString& path) {
    if (eval_panel_->textPath() != path) eval_panel_->setTextPath(path);
  });
  connect(run_panel_, &widgets::RunPanel::validityChanged, this, [this] { updateRunControls(); });
  connect(worker_panel_, &widgets::WorkerPanel::endpointChanged, this, &MainWindow::setWorker);
  connect(worker_panel_, &widgets::WorkerPanel::checkRequested, this, &MainWindow::refreshDevices);
  connect(run_controls_, &widgets::RunControls::startRequested, this, &MainWindow::startRun);
  connect(run_controls_, &widgets::RunControls::compareRequested, this, &MainWindow::compareBaselines);
  connect(run_controls_, &widgets::RunControls::pauseRequested, this, &MainWindow::pauseRun);
  connect(run_controls_, &widgets::RunControls::resumeRequested, this, &MainWindow::resumeRun);
  connect(run_controls_, &widgets::RunControls::cancelRequested, this, &MainWindow::cancelRun);
  connect(run_table_, &widgets::RunTable::selectionChangedIds, this, [this](const std::vector<int>& ids) {
    selected_ = ids;
    updateRunViews();
  });
  connect(run_table_, &QTableWidget::cellDoubleClicked, this, [this] { showExportDialog(); });
  connect(heatmap_metric_, &QComboBox::currentIndexChanged, this, [this] {
    heatmap_->setMetric(static_cast<widgets::LayerHeatmap::Metric>(heatmap_metric_->currentData().toInt()));
  });
  connect(heatmap_, &widgets::LayerHeatmap::cellClicked, this, [this](std::int64_t block, const QString& layer) {
    // The heatmap shows the last selected run (the compared one in a diff).
    const auto& runs = queue_->runs();
    const int id = !selected_.empty() ? selected_.back() : runs.empty() ? 0 : runs.back().id;
    if (id) showLayerDetail(id, block, layer);
  });
}

void MainWindow::connectRunQueue() {
  connect(queue_, &RunQueue::changed, this, [this] {
    updateRunControls();
    updateRunViews();
  });
  connect(run_controller_, &RunController::paused, this, [] { tessera::logger()->info("run paused"); });
  connect(run_controller_, &RunController::resumed, this, [] { tessera::logger()->info("run resumed"); });
  connect(queue_, &RunQueue::queueFinished, this, [this](bool cancelled, const QStringList& failures) {
    updateRunControls();
    statusBar()->showMessage(cancelled            ? tr("Run cancelled")
                             : failures.isEmpty() ? tr("Runs finished")
                                                  : tr("Runs finished, some failed"),
                             10000);
    if (!failures.isEmpty())
      reportError(tr("Some runs failed"), failures.join("\n"),
                  tr("The other runs are complete. Hover a failed run's status in the table for its error; "
                     "correct the settings or choose another method and start it again."));
    autosave();
    emit queueFinished();
  });
}

bool MainWindow::openModel(const QString& path) {
  if (controller_->isRunning() || run_controller_->isRunning()) {
    reportError(tr("Cannot open a model"), tr("A job is running."), tr("Cancel it first, or wait until it ends."));
    return false;
  }
  try {
    // The worker reads only the header or config.json, so waiting for it here is short.
    api::ModelSummary summary =
        protocol::model_summary_from_json(widgets::WorkerJob::runToEnd(worker_, "model_info", {{"model", utf8(path)}}));
    model_ = summary;
    tokenizer_path_.clear();  // a new model brings its own tokenizer unless one is chosen again
    architecture_->showModel(summary);
    const auto request = eval_panel_->request();
    architecture_->setRuntime(QString::fromStdString(request.device), QString::fromStdString(request.dtype));
    eval_panel_->setModelReady(true);
    QSettings().setValue(kLastModel, path);
    data_panel_->setModelPath(QString::fromStdString(summary.path));
    data_panel_->setTokenizerPath(QString());
    queue_->setReference(0, QString());  // the reference line belongs to the previous model
    status_model_->setText(tr("%1  |  %2 layers  |  %3 parameters")
                               .arg(QFileInfo(path).fileName())
                               .arg(summary.config.num_layers)
                               .arg(architecture_->value(tr("Parameters"))));
    statusBar()->showMessage(tr("Model loaded"), 5000);
    tessera::logger()->info("opened model {} ({}, {} layers, {} parameters)", summary.path, summary.format,
                            summary.config.num_layers, summary.parameters);
    if (summary.tokenizer_path.empty())
      tessera::logger()->warn("no tokenizer beside {}; choose one with File > Open Tokenizer", summary.path);
    syncDataPaths();
    updateTitle();
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Cannot open the model"), QString::fromStdString(e.what()),
                tr("Choose a llama2.c .bin file or a Hugging Face folder with config.json and safetensors."));
    return false;
  }
}

bool MainWindow::openTokenizer(const QString& path) {
  if (!worker_.isRemote() && !QFileInfo(path).isFile()) {  // a remote path is checked by the worker
    reportError(tr("Cannot open the tokenizer"), tr("%1 is not a file").arg(path),
                tr("Choose a SentencePiece .model, a llama2.c tokenizer .bin or a tokenizer.json."));
    return false;
  }
  tokenizer_path_ = path;
  architecture_->setTokenizer(path);
  data_panel_->setTokenizerPath(path);
  QSettings().setValue(kLastTokenizer, path);
  syncDataPaths();
  // The tokenizer is checked against the model's vocabulary when a run loads both.
  tessera::logger()->info("tokenizer set to {}", utf8(path));
  return true;
}

void MainWindow::setTextPath(const QString& path) {
  eval_panel_->setTextPath(path);
  data_panel_->setEvalTextPath(path);
}

void MainWindow::setCalibPath(const QString& path) { data_panel_->setCalibPath(path); }

void MainWindow::syncDataPaths() {
  run_panel_->setModelConfig(model_ ? std::optional<model::LlamaConfig>(model_->config) : std::nullopt);
  run_panel_->setDataPaths(model_ ? QString::fromStdString(model_->path) : QString(), tokenizer_path_,
                           data_panel_->calibPath());
}

void MainWindow::setWorker(const widgets::WorkerEndpoint& endpoint) {
  if (endpoint == worker_ && worker_panel_->endpoint() == endpoint) return;
  worker_ = endpoint;
  worker_panel_->setEndpoint(endpoint);
  controller_->setWorker(endpoint);
  run_controller_->setWorker(endpoint);
  QSettings().setValue(kLastWorker, QJsonDocument(endpoint.toJson()).toJson(QJsonDocument::Compact));
  tessera::logger()->info("jobs run on {}", utf8(endpoint.describe()));
  refreshDevices();
}

void MainWindow::refreshDevices() {
  if (devices_job_) {  // a check still going: its answer is no longer wanted
    devices_job_->disconnect(this);
    devices_job_->release();
  }
  devices_job_ = new widgets::WorkerJob(worker_, "devices", protocol::Json::object(), this);
  worker_panel_->showChecking();
  connect(devices_job_, &widgets::WorkerJob::succeeded, this, [this](const protocol::Json& result) {
    try {
      const auto devices = protocol::devices_from_json(result);
      worker_panel_->showDevices(devices);
      QStringList ids;
      for (const auto& d : devices) ids << QString::fromStdString(d.id);
      run_panel_->setDevices(ids);
      for (const auto& d : devices) tessera::logger()->info("worker device: {}", utf8(widgets::describeDevice(d)));
    } catch (const std::exception& e) {
      worker_panel_->showError(QString::fromStdString(e.what()));
    }
    devices_job_->release();
    devices_job_ = nullptr;
  });
  connect(devices_job_, &widgets::WorkerJob::failed, this, [this](const QString& message) {
    worker_panel_->showError(message);
    tessera::logger()->error("worker {}: {}", utf8(worker_.describe()), utf8(message));
    devices_job_->release();
    devices_job_ = nullptr;
  });
  devices_job_->start();
}

void MainWindow::restoreSession() {
  QSettings settings;
  const QByteArray worker = settings.value(kLastWorker).toByteArray();
  setWorker(worker.isEmpty() ? widgets::WorkerEndpoint()
                             : widgets::WorkerEndpoint::fromJson(QJsonDocument::fromJson(worker).object()));
  const QString model = settings.value(kLastModel).toString();
  const QString tokenizer = settings.value(kLastTokenizer).toString();
  const QString text = settings.value(kLastText).toString();
  const QString calib = settings.value(kLastCalib).toString();
  // Paths live on the worker's host: only local ones can be checked here.
  auto exists = [this](const QString& p) { return !p.isEmpty() && (worker_.isRemote() || QFileInfo::exists(p)); };
  if (exists(model) && openModel(model)) {
    if (exists(tokenizer)) openTokenizer(tokenizer);
  }
  if (!text.isEmpty() && QFileInfo(text).isFile()) setTextPath(text);
  if (!calib.isEmpty() && QFileInfo(calib).isFile()) setCalibPath(calib);
  const QString config = settings.value(kLastRunConfig).toString();
  if (!config.isEmpty()) {
    try {
      run_panel_->setConfig(pipeline::RunConfig::from_json_text(utf8(config), "remembered run settings"));
      syncDataPaths();
    } catch (const std::exception& e) {
      tessera::logger()->warn("remembered run settings ignored: {}", e.what());
    }
  }
  // The runs of the last session, so that closing the window lost nothing.
  if (QFileInfo::exists(autosavePath())) openSessionFrom(autosavePath());
}

bool MainWindow::runEvaluation() {
  if (!model_) {
    reportError(tr("Cannot evaluate"), tr("No model is open."), tr("Open a model first (File > Open Model File...)."));
    return false;
  }
  api::EvalRequest request = eval_panel_->request();
  if (request.text_path.empty()) {
    reportError(tr("Cannot evaluate"), tr("No text file is chosen."), tr("Choose a text file to evaluate on."));
    return false;
  }
  request.model_path = model_->path;
  request.tokenizer_path = utf8(tokenizer_path_);
  architecture_->setRuntime(QString::fromStdString(request.device), QString::fromStdString(request.dtype));
  tessera::logger()->info("perplexity run: text {}, windows {}, batch {}, {} {}", request.text_path,
                          request.seq_len > 0 ? std::to_string(request.seq_len) : std::string("default"),
                          request.batch_size, request.device, request.dtype);
  return controller_->start(request);
}

// ---- quantization runs --------------------------------------------------------------------

void MainWindow::setRunsRoot(const QString& folder) { queue_->setRunsRoot(folder); }

widgets::SessionRun* MainWindow::findRun(int id) { return queue_->findRun(id); }
const std::vector<widgets::SessionRun>& MainWindow::sessionRuns() const { return queue_->runs(); }
double MainWindow::referencePerplexity() const { return queue_->referencePerplexity(); }
bool MainWindow::isBusy() const { return queue_->isBusy(); }

bool MainWindow::enqueue(const std::vector<pipeline::RunConfig>& configs) {
  if (isBusy()) {
    reportError(tr("Cannot start"), tr("A run is going."), tr("Wait for it to end or cancel it first."));
    return false;
  }
  if (!run_panel_->isValid()) {
    reportError(tr("Cannot start"), run_panel_->validationError(), tr("Correct the setting outlined in red."));
    return false;
  }
  if (!worker_.isRemote() && !QDir().mkpath(queue_->runsRoot())) {
    reportError(tr("Cannot start"), tr("Cannot create the runs folder %1.").arg(queue_->runsRoot()),
                tr("Check the permissions and the free space of that folder."));
    return false;
  }
  QSettings().setValue(kLastRunConfig, QString::fromStdString(run_panel_->config().to_json_text()));
  // The unquantized model on the same text first: the reference line of the comparison chart.
  api::EvalRequest reference;
  reference.model_path = model_->path;
  reference.tokenizer_path = utf8(tokenizer_path_);
  reference.text_path = utf8(data_panel_->evalTextPath());
  reference.device = configs.front().device;
  const std::vector<int> ids = queue_->enqueue(configs, data_panel_->evalTextPath(), reference);
  selected_ = ids;  // watch the new runs
  updateRunViews();
  run_table_->selectRuns(ids);
  updateRunControls();
  return true;
}

bool MainWindow::startRun() {
  if (!model_) {
    reportError(tr("Cannot start"), tr("No model is open."), tr("Open a model first (File > Open Model File...)."));
    return false;
  }
  return enqueue({run_panel_->config()});
}

bool MainWindow::compareBaselines() {
  if (!model_) {
    reportError(tr("Cannot compare"), tr("No model is open."), tr("Open a model first (File > Open Model File...)."));
    return false;
  }
  std::vector<pipeline::RunConfig> configs;
  // Every registered method, in the registry's order: the cheap baselines first, so that their
  // numbers are on screen while TesseraQ optimises.
  std::string names;
  for (const auto& m : methods::methods()) {
    pipeline::RunConfig c = run_panel_->config();
    c.method = m.id;
    configs.push_back(c);
    names += (names.empty() ? "" : ", ") + m.id;
  }
  tessera::logger()->info("comparing baselines: {} at {}", names, configs.front().weight.label());
  return enqueue(configs);
}

void MainWindow::pauseRun() { queue_->pause(); }
void MainWindow::resumeRun() { queue_->resumePaused(); }
void MainWindow::cancelRun() { queue_->cancel(); }

bool MainWindow::resumeSelectedRun() {
  widgets::SessionRun* r = selected_.empty() ? nullptr : findRun(selected_.back());
  // Only local run directories can be checked here; a worker elsewhere says what is missing.
  if (r && !worker_.isRemote() && !QFileInfo::exists(r->run_dir + "/run.json")) {
    reportError(tr("Cannot resume"), tr("%1 holds no run.json.").arg(r->run_dir),
                tr("Runs that failed before their first block have nothing to resume: start them again."));
    return false;
  }
  try {
    if (!r) throw Error("no run is selected");
    queue_->resume(r->id);
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Cannot resume"), QString::fromStdString(e.what()),
                tr("Select a cancelled or failed run whose run directory holds run.json."));
    return false;
  }
}

void MainWindow::updateRunControls() {
  using State = widgets::RunControls::State;
  run_controls_->setState(!isBusy() ? State::Idle : run_controller_->isPaused() ? State::Paused : State::Running);
  run_controls_->setCanStart(model_.has_value() && run_panel_->isValid());
}

void MainWindow::selectRuns(const std::vector<int>& ids) {
  selected_ = ids;
  run_table_->selectRuns(ids);
  updateRunViews();
}

void MainWindow::updateRunViews() {
  const auto& runs = queue_->runs();
  run_table_->setRuns(runs);
  // Plots: the selected runs, or every run when none is selected. Repeated methods get shades.
  std::vector<int> shown = selected_;
  if (shown.empty())
    for (const auto& r : runs) shown.push_back(r.id);
  std::map<QString, int> per_method;
  std::map<int, QColor> color;  // by run id
  for (const auto& r : runs) {
    const QString method = QString::fromStdString(r.config.method);
    color[r.id] = widgets::methodColor(method, per_method[method]++);
  }
  std::vector<widgets::PlottedRun> plotted;
  for (const auto& r : runs)
    if (std::find(shown.begin(), shown.end(), r.id) != shown.end()) plotted.push_back({r.id, r.name, color[r.id]});
  loss_plot_->setRuns(plotted);
  hardening_plot_->setRuns(plotted);
  memory_plot_->setRuns(plotted);
  // Perplexity: every evaluated run of the session, whatever the selection.
  std::vector<widgets::SessionPerplexityPlot::Bar> bars;
  QString text;
  for (const auto& r : runs) {
    if (r.perplexity <= 0) continue;
    bars.push_back({r.name, color[r.id], r.perplexity});
    text = QFileInfo(r.eval_text).fileName();
  }
  session_ppl_->setBars(bars, text);
  const QString reference_text = queue_->referenceText();
  session_ppl_->setReference(reference_text.isEmpty() || text.isEmpty() || QFileInfo(reference_text).fileName() == text
                                 ? queue_->referencePerplexity()
                                 : 0.0);
  updateHeatmap(/*force=*/true);  // the selection may have changed
}

void MainWindow::updateHeatmap(bool force) {
  const std::uint64_t revision = run_metrics_->revision();
  if (revision == heatmap_revision_ && !force) return;
  heatmap_revision_ = revision;
  // Most changes are step losses; the heatmap only changes when layer statistics arrive.
  const std::size_t layers = run_metrics_->layerCount();
  if (layers == heatmap_layers_ && !force) return;
  heatmap_layers_ = layers;
  // One selected run: its errors. Two or more: the last against the first. None: the newest run.
  std::vector<int> shown = selected_;
  if (shown.empty() && !queue_->runs().empty()) shown.push_back(queue_->runs().back().id);
  if (shown.empty()) return;
  const auto* last = findRun(shown.back());
  if (!last) return;
  const widgets::RunTrace t = run_metrics_->trace(last->id);
  std::int64_t blocks = t.progress.total_blocks;
  if (model_) blocks = std::max<std::int64_t>(blocks, model_->config.num_layers);
  if (shown.size() >= 2) {
    const auto* first = findRun(shown.front());
    if (first) {
      heatmap_->showDiff(shortName(*first), run_metrics_->trace(first->id).layers, shortName(*last), t.layers, blocks);
      return;
    }
  }
  heatmap_->showRun(last->name, t.layers, blocks);
}

void MainWindow::updateStatus() {
  updateHeatmap();
  if (!run_controller_->isRunning()) {
    status_run_->clear();
    status_progress_->setVisible(false);
    return;
  }
  const int id = run_controller_->currentRunId();
  std::size_t blocks_done = 0;
  const widgets::RunProgress p = run_metrics_->progress(id, &blocks_done);
  const auto* r = findRun(id);
  QString text = r ? r->name + ": " : QString();
  double fraction = 0;
  if (run_controller_->isPaused()) text += tr("paused, ");
  if (p.phase == "evaluating") {
    text += tr("perplexity, window %1 of %2").arg(p.step).arg(p.total_steps);
    fraction = p.total_steps > 0 ? static_cast<double>(p.step) / p.total_steps : 0;
  } else if (p.block >= 0 && p.total_blocks > 0) {
    text += tr("block %1 of %2").arg(p.block + 1).arg(p.total_blocks);
    // The method's iteration noun: TesseraQ's iterations are PAR hardening rounds, OmniQuant's epochs.
    const auto* method = r ? methods::find_method(r->config.method) : nullptr;
    const QString noun =
        method && !method->iteration_noun.empty() ? QString::fromStdString(method->iteration_noun) : tr("iteration");
    if (p.total_iterations > 0) text += tr(", %1 %2 of %3").arg(noun).arg(p.iteration + 1).arg(p.total_iterations);
    if (p.total_steps > 0) text += tr(", step %1 of %2").arg(p.step).arg(p.total_steps);
    const double within = p.total_steps > 0 ? static_cast<double>(p.step) / p.total_steps : 0;
    const bool block_done = blocks_done > static_cast<std::size_t>(p.block);
    fraction = std::min(
        1.0, (static_cast<double>(blocks_done) + (block_done ? 0 : within)) / static_cast<double>(p.total_blocks));
    if (p.eta_seconds > 0) text += tr(", ETA %1").arg(widgets::formatSeconds(p.eta_seconds));
  } else {
    text += QString::fromStdString(p.phase.empty() ? "starting" : p.phase) + "...";
  }
  std::size_t queued = 0;
  for (const auto& q : queue_->runs()) queued += q.status == widgets::SessionRun::Status::Queued;
  if (queued) text += tr("  (%1 queued)").arg(queued);
  status_run_->setText(text);
  status_progress_->setVisible(true);
  status_progress_->setValue(static_cast<int>(1000 * fraction));
  status_progress_->setFormat(QString("%1 %").arg(100.0 * fraction, 0, 'f', 0));
}

void MainWindow::refreshAll() {
  for (widgets::RunPlot* plot : std::initializer_list<widgets::RunPlot*>{loss_plot_, hardening_plot_, memory_plot_})
    plot->refresh();
  updateHeatmap(/*force=*/true);
  for (QCustomPlot* plot :
       std::initializer_list<QCustomPlot*>{loss_plot_, hardening_plot_, memory_plot_, session_ppl_, heatmap_, plot_})
    plot->replot();
}

// ---- dialogs --------------------------------------------------------------------------------

QDialog* MainWindow::showExportDialog() {
  std::vector<widgets::ExportDialog::Choice> choices;
  for (const auto& r : queue_->runs())
    if (r.finished() && !r.run_dir.isEmpty()) choices.push_back({r.id, r.name, r.run_dir});
  if (choices.empty()) {
    reportError(tr("Nothing to export"), tr("The session has no finished run."),
                tr("Quantize a model first (Start run), then export it."));
    return nullptr;
  }
  const int preselected = selected_.empty() ? choices.back().run_id : selected_.back();
  auto* dialog = new widgets::ExportDialog(choices, preselected, worker_, this);
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  connect(dialog, &widgets::ExportDialog::exported, this, [this](int id, const api::ExportResult& result) {
    if (auto* r = findRun(id)) {
      r->export_bytes = result.bytes;
      r->export_path = QString::fromStdString(result.path);
    }
    updateRunViews();
    autosave();
  });
  connect(dialog, &widgets::ExportDialog::exportFailed, this,
          [](int, const QString& message) { tessera::logger()->error("export failed: {}", utf8(message)); });
  dialog->show();
  return dialog;
}

QDialog* MainWindow::showLayerDetail(int run_id, std::int64_t block, const QString& layer) {
  const auto* r = findRun(run_id);
  if (!r || r->run_dir.isEmpty()) return nullptr;
  auto* dialog = new widgets::LayerDetailDialog(r->name, r->run_dir, block, layer, worker_, this);
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  dialog->show();
  return dialog;
}

// ---- session --------------------------------------------------------------------------------

widgets::Session MainWindow::currentSession() const {
  widgets::Session s;
  s.runs = queue_->runs();
  for (const auto& r : s.runs) s.traces.emplace_back(r.id, run_metrics_->trace(r.id));
  s.reference_perplexity = queue_->referencePerplexity();
  s.model = model_ ? QString::fromStdString(model_->path) : QString();
  s.tokenizer = tokenizer_path_;
  s.calib = data_panel_->calibPath();
  s.eval_text = data_panel_->evalTextPath();
  s.worker = worker_;
  return s;
}

bool MainWindow::saveSessionTo(const QString& path) {
  try {
    widgets::saveSession(path, currentSession());
    QSettings().setValue(kLastSessionFile, path);
    tessera::logger()->info("session saved to {} ({} runs)", utf8(path), queue_->runs().size());
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Cannot save the session"), QString::fromStdString(e.what()),
                tr("Choose a folder you can write to."));
    return false;
  }
}

bool MainWindow::openSessionFrom(const QString& path) {
  if (isBusy()) {
    reportError(tr("Cannot open a session"), tr("A run is going."), tr("Wait for it to end or cancel it first."));
    return false;
  }
  widgets::Session s;
  try {
    s = widgets::loadSession(path);
  } catch (const std::exception& e) {
    reportError(tr("Cannot open the session"), QString::fromStdString(e.what()),
                tr("Choose a .tessera-session file saved by the workbench."));
    return false;
  }
  stopFollowing();  // their runs belong to the session being closed
  // A session file names the program its jobs ran with: one from elsewhere is not started
  // without the user's word (it could be any command line).
  if (!(s.worker == worker_)) {
    const bool own = path == autosavePath();
    const bool agreed =
        own || (dialogs_enabled_ &&
                QMessageBox::question(this, tr("Switch the worker?"),
                                      tr("This session ran its jobs on %1; the workbench now uses %2. Run the "
                                         "session's jobs there?")
                                          .arg(s.worker.describe(), worker_.describe())) == QMessageBox::Yes);
    if (agreed)
      setWorker(s.worker);
    else
      tessera::logger()->warn("the session's worker {} was not adopted; jobs stay on {}", utf8(s.worker.describe()),
                              utf8(worker_.describe()));
  }
  auto exists = [this](const QString& p) { return !p.isEmpty() && (worker_.isRemote() || QFileInfo::exists(p)); };
  if (exists(s.model) && (!model_ || QString::fromStdString(model_->path) != s.model)) openModel(s.model);
  if (exists(s.tokenizer)) openTokenizer(s.tokenizer);
  if (!s.calib.isEmpty()) setCalibPath(s.calib);
  if (!s.eval_text.isEmpty()) setTextPath(s.eval_text);
  run_metrics_->clear();
  for (const auto& [id, trace] : s.traces) run_metrics_->set(id, trace);
  for (const auto& r : s.runs) {
    // Layer statistics of runs whose curves were not recorded (older files): from the run folder.
    if (run_metrics_->trace(r.id).layers.empty() && !worker_.isRemote() && !r.run_dir.isEmpty() &&
        QFileInfo::exists(r.run_dir)) {
      widgets::RunTrace t = run_metrics_->trace(r.id);
      widgets::readRunStats(r.run_dir, t);
      run_metrics_->set(r.id, t);
    }
  }
  queue_->setReference(s.reference_perplexity, s.eval_text);
  selected_.clear();
  queue_->replaceRuns(s.runs);
  updateRunViews();
  updateRunControls();
  tessera::logger()->info("session {} opened ({} runs)", utf8(path), queue_->runs().size());
  return true;
}

bool MainWindow::addRunDirectory(const QString& run_dir) {
  try {
    const protocol::Json info = widgets::WorkerJob::runToEnd(worker_, "run_info", {{"run_dir", utf8(run_dir)}});
    widgets::SessionRun r;
    r.config = pipeline::RunConfig::from_json_text(protocol::field<protocol::Json>(info, "config").dump(),
                                                   utf8(run_dir) + "/run.json");
    r.run_dir = run_dir;
    r.calibration_sha256 = QString::fromStdString(info.value("calibration_sha256", std::string()));
    r.seconds = info.value("seconds", 0.0);
    const bool finished = info.value("finished", false);
    const bool being_written = info.value("being_written", false);
    r.status = finished        ? widgets::SessionRun::Status::Finished
               : being_written ? widgets::SessionRun::Status::Running
                               : widgets::SessionRun::Status::Cancelled;
    if (!finished && !being_written) r.error = tr("unfinished: resume it (Run > Resume Selected Run)");
    const std::int64_t blocks = info.value("blocks", std::int64_t{0});
    r.id = queue_->addRun(r);
    r.name = findRun(r.id)->name;
    if (info.value("has_events", false) || being_written) {
      followRun(r.id, blocks);
    } else {
      // Made before runs recorded their events: the statistics files hold the heatmap's numbers.
      widgets::RunTrace t;
      t.progress.total_blocks = blocks;
      if (!worker_.isRemote()) widgets::readRunStats(run_dir, t);
      t.progress.total_blocks = std::max(t.progress.total_blocks, blocks);
      run_metrics_->set(r.id, t);
    }
    updateRunViews();
    tessera::logger()->info("added run {} from {}{}", utf8(r.name), utf8(run_dir),
                            being_written ? " (being written: following it live)" : "");
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Cannot add the run"), QString::fromStdString(e.what()),
                tr("Choose the folder that holds run.json, blocks/ and stats/."));
    return false;
  }
}

void MainWindow::followRun(int run_id, std::int64_t total_blocks) {
  auto* job = new widgets::WorkerJob(worker_, "follow", {{"run_dir", utf8(findRun(run_id)->run_dir)}}, this);
  auto recorder = std::make_shared<RunEventRecorder>(run_metrics_, run_id);
  run_metrics_->update(run_id, [&](widgets::RunTrace& t) { t.progress.total_blocks = total_blocks; });
  connect(job, &widgets::WorkerJob::runEvent, this, [this, recorder, run_id](const rundir::RunEvent& e) {
    recorder->on_event(e);
    if (e.kind == rundir::RunEvent::Kind::Evaluated)
      if (auto* r = findRun(run_id)) {
        r->perplexity = e.perplexity;
        r->eval_text = QString::fromStdString(e.text_path);
      }
  });
  following_[run_id] = job;
  auto end = [this, job, run_id](bool finished, double seconds, const QString& error) {
    job->release();
    following_.erase(run_id);
    if (auto* r = findRun(run_id)) {
      const widgets::RunTrace trace = run_metrics_->trace(run_id);
      r->peak_memory_bytes = trace.peakGpuBytes() > 0 ? trace.peakGpuBytes() : trace.peakRssBytes();
      if (finished) {
        r->status = widgets::SessionRun::Status::Finished;
        r->seconds = seconds;
        r->error.clear();
      } else if (r->status == widgets::SessionRun::Status::Running) {
        r->status = widgets::SessionRun::Status::Cancelled;
        r->error = error.isEmpty() ? tr("unfinished: resume it (Run > Resume Selected Run)") : error;
      }
    }
    updateRunViews();
    autosave();
  };
  connect(job, &widgets::WorkerJob::succeeded, this,
          [end](const protocol::Json& r) { end(r.value("finished", false), r.value("seconds", 0.0), QString()); });
  connect(job, &widgets::WorkerJob::failed, this, [end](const QString& message) {
    tessera::logger()->error("following the run failed: {}", utf8(message));
    end(false, 0, message);
  });
  connect(job, &widgets::WorkerJob::cancelled, this, [end] { end(false, 0, QString()); });
  job->start();
}

void MainWindow::stopFollowing() {
  for (auto& [id, job] : following_) {
    job->disconnect(this);
    job->cancel();
    job->release();
  }
  following_.clear();
}

QString MainWindow::autosavePath() const {
  return QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation) + "/last.tessera-session";
}

void MainWindow::autosave() {
  if (queue_->runs().empty()) return;
  QDir().mkpath(QFileInfo(autosavePath()).absolutePath());
  try {
    widgets::saveSession(autosavePath(), currentSession());
  } catch (const std::exception& e) {
    tessera::logger()->warn("session autosave failed: {}", e.what());
  }
}

void MainWindow::closeEvent(QCloseEvent* event) {
  autosave();
  QMainWindow::closeEvent(event);
}

void MainWindow::chooseSessionToOpen() {
  const QString path = QFileDialog::getOpenFileName(this, tr("Open session"), dialogStartDir(kLastSessionFile),
                                                    tr("Tessera sessions (*.tessera-session);;All files (*)"));
  if (!path.isEmpty()) openSessionFrom(path);
}

void MainWindow::chooseSessionToSave() {
  QString path = QFileDialog::getSaveFileName(this, tr("Save session"), dialogStartDir(kLastSessionFile),
                                              tr("Tessera sessions (*.tessera-session)"));
  if (path.isEmpty()) return;
  if (!path.endsWith(".tessera-session")) path += ".tessera-session";
  saveSessionTo(path);
}

void MainWindow::chooseRunDirectory() {
  const QString path = QFileDialog::getExistingDirectory(this, tr("Add a run directory"), queue_->runsRoot());
  if (!path.isEmpty()) addRunDirectory(path);
}

void MainWindow::chooseModelFile() {
  const QString path =
      QFileDialog::getOpenFileName(this, tr("Open model file"), dialogStartDir(kLastModel),
                                   tr("Checkpoints (*.bin *.safetensors config.json *.gguf);;All files (*)"));
  // The core maps a .safetensors or config.json file to its Hugging Face folder.
  if (!path.isEmpty()) openModel(path);
}

void MainWindow::chooseModelFolder() {
  const QString path =
      QFileDialog::getExistingDirectory(this, tr("Open Hugging Face model folder"), dialogStartDir(kLastModel));
  if (!path.isEmpty()) openModel(path);
}

void MainWindow::chooseTokenizer() {
  const QString path = QFileDialog::getOpenFileName(this, tr("Open tokenizer"), dialogStartDir(kLastTokenizer),
                                                    tr("Tokenizers (*.model *.bin *.json);;All files (*)"));
  if (!path.isEmpty()) openTokenizer(path);
}

void MainWindow::showAbout() {
  QMessageBox::about(this, tr("About Tessera Workbench"),
                     tr("<b>Tessera Workbench %1</b><p>Quantization workbench for LLaMA-family "
                        "models.</p>")
                         .arg(kVersion));
}

void MainWindow::reportError(const QString& title, const QString& message, const QString& advice) {
  tessera::logger()->error("{}: {}", utf8(title), utf8(message));
  statusBar()->showMessage(title + ": " + message, 10000);
  if (!dialogs_enabled_) return;
  QMessageBox box(QMessageBox::Critical, title, message, QMessageBox::Ok, this);
  if (!advice.isEmpty()) box.setInformativeText(advice);
  box.exec();
}

void MainWindow::updateTitle() {
  setWindowTitle(model_ ? tr("%1 - Tessera Workbench").arg(QFileInfo(QString::fromStdString(model_->path)).fileName())
                        : tr("Tessera Workbench"));
}

QString MainWindow::dialogStartDir(const char* key) const {
  const QString last = QSettings().value(key).toString();
  if (last.isEmpty()) return QString();
  return QFileInfo(last).absolutePath();  // a folder model: start in its parent, to pick a sibling
}

}  // namespace tessera::workbench
