#include "main_window.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <algorithm>

#include "architecture_view.h"
#include "eval_controller.h"
#include "eval_panel.h"
#include "log_pane.h"
#include "perplexity_plot.h"
#include "qt_log_sink.h"
#include "util/error.h"
#include "util/log.h"
#include "util/version.h"

namespace tessera::workbench {
namespace {

// QSettings keys. Paths are remembered so that the next session and the file dialogs start where
// the user left off.
constexpr const char* kLastModel = "session/model";
constexpr const char* kLastTokenizer = "session/tokenizer";
constexpr const char* kLastText = "session/text";

std::string utf8(const QString& s) { return s.toUtf8().toStdString(); }

}  // namespace

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent), metrics_(std::make_shared<widgets::MetricsStore>()) {
  controller_ = new EvalController(metrics_, this);
  buildCentralArea();
  buildMenus();

  status_model_ = new QLabel(this);
  statusBar()->addPermanentWidget(status_model_);
  statusBar()->showMessage(tr("Open a model to begin (File > Open Model File...)"));

  // Core log lines (from any thread) reach the pane through the sink's queued signal.
  log_sink_ = std::make_shared<widgets::QtLogSink>();
  connect(log_sink_.get(), &widgets::QtLogSink::lineLogged, log_pane_, &widgets::LogPane::appendLine);
  tessera::logger()->sinks().push_back(log_sink_);

  connect(eval_panel_, &widgets::EvalPanel::runRequested, this, &MainWindow::runEvaluation);
  connect(eval_panel_, &widgets::EvalPanel::cancelRequested, controller_, &EvalController::cancel);
  connect(eval_panel_, &widgets::EvalPanel::textPathChanged, this,
          [](const QString& path) { QSettings().setValue(kLastText, path); });
  connect(eval_panel_, &widgets::EvalPanel::runtimeChanged, architecture_,
          &widgets::ArchitectureView::setRuntime);

  connect(controller_, &EvalController::started, this, [this] {
    eval_panel_->setRunning(true);
    statusBar()->showMessage(tr("Evaluating..."));
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
    statusBar()->showMessage(tr("Perplexity %1 on %2").arg(r.perplexity, 0, 'f', 4)
                                 .arg(QFileInfo(QString::fromStdString(r.text_path)).fileName()));
  });
  connect(controller_, &EvalController::cancelled, this, [this] {
    eval_panel_->setRunning(false);
    eval_panel_->showStopped(tr("Cancelled."));
    plot_->showStopped(tr("cancelled; windows evaluated: %1").arg(plot_->pointCount()));
    tessera::logger()->warn("evaluation cancelled");
    statusBar()->showMessage(tr("Evaluation cancelled"));
  });
  connect(controller_, &EvalController::failed, this, [this](const QString& message) {
    eval_panel_->setRunning(false);
    eval_panel_->showStopped(tr("Failed: %1").arg(message));
    plot_->showStopped(tr("the evaluation failed (see the log)"));
    statusBar()->showMessage(tr("Evaluation failed"));
    reportError(tr("Evaluation failed"), message);
  });

  resize(1280, 800);
  updateTitle();
}

MainWindow::~MainWindow() {
  // Join the worker before unhooking the sink: spdlog's sink list is not locked against a thread
  // that is logging.
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
  QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  QMenu* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&About Tessera Workbench"), this, &MainWindow::showAbout);
}

void MainWindow::buildCentralArea() {
  architecture_ = new widgets::ArchitectureView(this);
  eval_panel_ = new widgets::EvalPanel(this);
  plot_ = new widgets::PerplexityPlot(metrics_, this);
  log_pane_ = new widgets::LogPane(this);

  // Right column: settings beside the plot on top, the log across the bottom.
  auto* run_area = new QSplitter(Qt::Horizontal);
  run_area->addWidget(eval_panel_);
  run_area->addWidget(plot_);
  run_area->setStretchFactor(0, 0);
  run_area->setStretchFactor(1, 1);
  run_area->setSizes({400, 480});

  auto* right = new QSplitter(Qt::Vertical);
  right->addWidget(run_area);
  right->addWidget(log_pane_);
  right->setStretchFactor(0, 3);
  right->setStretchFactor(1, 1);
  right->setSizes({560, 170});

  auto* central = new QSplitter(Qt::Horizontal, this);
  central->addWidget(architecture_);
  central->addWidget(right);
  central->setStretchFactor(0, 0);
  central->setStretchFactor(1, 1);
  central->setSizes({360, 920});
  central->setContentsMargins(6, 6, 6, 0);
  setCentralWidget(central);
}

bool MainWindow::openModel(const QString& path) {
  if (controller_->isRunning()) {
    reportError(tr("Cannot open a model"), tr("An evaluation is running; cancel it first."));
    return false;
  }
  try {
    // Reads only the header or config.json, so it is quick enough for the GUI thread.
    api::ModelSummary summary = api::describe_model(utf8(path));
    model_ = summary;
    tokenizer_path_.clear();  // a new model brings its own tokenizer unless one is chosen again
    architecture_->showModel(summary);
    const auto request = eval_panel_->request();
    architecture_->setRuntime(QString::fromStdString(request.device), QString::fromStdString(request.dtype));
    eval_panel_->setModelReady(true);
    QSettings().setValue(kLastModel, path);
    status_model_->setText(tr("%1  |  %2 layers  |  %3 parameters")
                               .arg(QFileInfo(path).fileName())
                               .arg(summary.config.num_layers)
                               .arg(architecture_->value(tr("Parameters"))));
    statusBar()->showMessage(tr("Model loaded"), 5000);
    tessera::logger()->info("opened model {} ({}, {} layers, {} parameters)", summary.path, summary.format,
                            summary.config.num_layers, summary.parameters);
    if (summary.tokenizer_path.empty())
      tessera::logger()->warn("no tokenizer beside {}; choose one with File > Open Tokenizer", summary.path);
    updateTitle();
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Cannot open the model"), QString::fromStdString(e.what()));
    return false;
  }
}

bool MainWindow::openTokenizer(const QString& path) {
  if (!QFileInfo(path).isFile()) {
    reportError(tr("Cannot open the tokenizer"), tr("%1 is not a file").arg(path));
    return false;
  }
  tokenizer_path_ = path;
  architecture_->setTokenizer(path);
  QSettings().setValue(kLastTokenizer, path);
  // The tokenizer is checked against the model's vocabulary when a run loads both.
  tessera::logger()->info("tokenizer set to {}", utf8(path));
  return true;
}

void MainWindow::setTextPath(const QString& path) { eval_panel_->setTextPath(path); }

void MainWindow::restoreSession() {
  QSettings settings;
  const QString model = settings.value(kLastModel).toString();
  const QString tokenizer = settings.value(kLastTokenizer).toString();
  const QString text = settings.value(kLastText).toString();
  if (!model.isEmpty() && QFileInfo::exists(model) && openModel(model)) {
    if (!tokenizer.isEmpty() && QFileInfo(tokenizer).isFile()) openTokenizer(tokenizer);
  }
  if (!text.isEmpty() && QFileInfo(text).isFile()) setTextPath(text);
}

bool MainWindow::runEvaluation() {
  if (!model_) {
    reportError(tr("Cannot evaluate"), tr("Open a model first (File > Open Model File...)."));
    return false;
  }
  api::EvalRequest request = eval_panel_->request();
  if (request.text_path.empty()) {
    reportError(tr("Cannot evaluate"), tr("Choose a text file to evaluate on."));
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

void MainWindow::chooseModelFile() {
  const QString path = QFileDialog::getOpenFileName(
      this, tr("Open model file"), dialogStartDir(kLastModel),
      tr("Checkpoints (*.bin *.safetensors config.json);;All files (*)"));
  // The core maps a .safetensors or config.json file to its Hugging Face folder.
  if (!path.isEmpty()) openModel(path);
}

void MainWindow::chooseModelFolder() {
  const QString path = QFileDialog::getExistingDirectory(this, tr("Open Hugging Face model folder"),
                                                         dialogStartDir(kLastModel));
  if (!path.isEmpty()) openModel(path);
}

void MainWindow::chooseTokenizer() {
  const QString path = QFileDialog::getOpenFileName(
      this, tr("Open tokenizer"), dialogStartDir(kLastTokenizer),
      tr("Tokenizers (*.model *.bin);;All files (*)"));
  if (!path.isEmpty()) openTokenizer(path);
}

void MainWindow::showAbout() {
  QMessageBox::about(this, tr("About Tessera Workbench"),
                     tr("<b>Tessera Workbench %1</b><p>Quantization workbench for LLaMA-family "
                        "models.</p>").arg(kVersion));
}

void MainWindow::reportError(const QString& title, const QString& message) {
  tessera::logger()->error("{}: {}", utf8(title), utf8(message));
  statusBar()->showMessage(title + ": " + message, 10000);
  if (dialogs_enabled_) QMessageBox::critical(this, title, message);
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
