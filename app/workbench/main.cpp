// tessera-workbench: the desktop GUI. Options open a model, tokenizer and text at start-up;
// --run-eval starts the evaluation, --demo runs the quick CPU baseline comparison on stories260K
// (preset cpu-quick), and --screenshot FILE renders the window to a PNG (after the evaluation or
// the demo when one is asked for) and exits, for tests and the README.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QTimer>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <vector>

#include "eval_controller.h"
#include "export_dialog.h"
#include "layer_detail_dialog.h"
#include "main_window.h"
#include "methods/method_registry.h"
#include "perplexity_plot.h"
#include "run_controller.h"
#include "run_metrics_store.h"
#include "run_panel.h"
#include "util/log.h"
#include "util/version.h"
#include "worker_endpoint.h"

using tessera::workbench::EvalController;
using tessera::workbench::MainWindow;
using tessera::workbench::RunController;

namespace {

// Renders the window as it is on screen (QWidget::grab paints it into a pixmap, which also works
// on the offscreen platform) and quits with `exit_code`, or 1 if the file cannot be written.
void take_screenshot_and_quit(MainWindow& window, const QString& file, int exit_code) {
  window.perplexityPlot()->refresh();
  window.refreshAll();
  QApplication::processEvents();
  if (!window.grab().save(file, "PNG")) {
    std::fprintf(stderr, "error: cannot write screenshot %s\n", qPrintable(file));
    exit_code = 1;
  } else {
    tessera::logger()->info("screenshot written to {}", file.toStdString());
  }
  QApplication::exit(exit_code);
}

// The shared data folder of the demo: TESSERA_SHARED_DIR, else the one beside the source tree
// (as the tests and installers/quickstart.sh find it).
QString shared_data_dir() {
  if (const char* env = std::getenv("TESSERA_SHARED_DIR"); env && *env) return QString(env) + "/data";
  return QString(TESSERA_SHARED_DIR) + "/data";
}

// --demo: stories260K, TinyStories calibration and evaluation text, preset cpu-quick, then the
// baseline comparison. False (reason logged) when the data is missing.
bool start_demo(MainWindow& window, const QString& runs_root) {
  const QString data = shared_data_dir();
  const QString model = data + "/models/stories260K/stories260K.bin";
  const QString calib = data + "/text/tinystories/train-sample.txt";
  const QString text = data + "/text/tinystories/sample.txt";
  for (const QString& f : {model, calib, text}) {
    if (!QFileInfo(f).isFile()) {
      tessera::logger()->error("--demo needs {} (set TESSERA_SHARED_DIR to the shared folder)", f.toStdString());
      return false;
    }
  }
  if (!window.openModel(model)) return false;
  window.setCalibPath(calib);
  window.setTextPath(text);
  if (!window.runPanel()->applyPreset("cpu-quick")) return false;
  window.setRunsRoot(runs_root);
  return window.compareBaselines();
}

// After the demo's comparison: exports every finished run through the export dialog (fake-quant
// Hugging Face folder beside its run directory), one after the other, then calls `done`.
void export_all_then(MainWindow& window, std::vector<int> ids, std::function<void()> done) {
  if (ids.empty()) {
    done();
    return;
  }
  const int id = ids.front();
  ids.erase(ids.begin());
  QString run_dir;
  for (const auto& r : window.sessionRuns())
    if (r.id == id) run_dir = r.run_dir;
  auto* dialog = qobject_cast<tessera::widgets::ExportDialog*>(window.showExportDialog());
  if (!dialog || !dialog->selectRun(id) || !dialog->selectFormat("hf")) {
    if (dialog) dialog->close();
    export_all_then(window, ids, done);
    return;
  }
  dialog->setOutputPath(run_dir + "-hf");
  auto next = [&window, dialog, ids, done] {
    dialog->close();
    export_all_then(window, ids, done);
  };
  QObject::connect(dialog, &tessera::widgets::ExportDialog::exported, &window, next, Qt::QueuedConnection);
  QObject::connect(dialog, &tessera::widgets::ExportDialog::exportFailed, &window, next, Qt::QueuedConnection);
  if (!dialog->startExport()) next();
}

// Renders a layer's detail dialog (the heatmap click) to `file` once it has loaded, then `done`.
void detail_screenshot_then(MainWindow& window, int run_id, const QString& file, std::function<void()> done) {
  auto* dialog = qobject_cast<tessera::widgets::LayerDetailDialog*>(window.showLayerDetail(run_id, 1, "gate_proj"));
  if (!dialog) {
    done();
    return;
  }
  QObject::connect(dialog, &tessera::widgets::LayerDetailDialog::loaded, &window, [dialog, file, done] {
    QTimer::singleShot(200, dialog, [dialog, file, done] {
      if (!dialog->grab().save(file, "PNG"))
        std::fprintf(stderr, "error: cannot write screenshot %s\n", qPrintable(file));
      dialog->close();
      done();
    });
  });
}

// During the demo: pauses the TesseraQ run once two of its blocks are done, renders the window to
// `file` (live plots, status bar with block, iteration, step and ETA, the Resume button) and
// resumes it. Shows that pause takes effect mid-run and that the window keeps drawing meanwhile.
void pause_screenshot_during_tesseraq(MainWindow& window, const QString& file) {
  auto* poll = new QTimer(&window);
  poll->setInterval(20);
  QObject::connect(poll, &QTimer::timeout, &window, [&window, poll, file] {
    RunController* runs = window.runController();
    if (!runs->isRunning()) return;
    const int id = runs->currentRunId();
    bool tesseraq = false;
    // The run worth pausing: that of a method starting from another's result (TesseraQ).
    for (const auto& r : window.sessionRuns()) {
      const auto* m = tessera::methods::find_method(r.config.method);
      tesseraq |= r.id == id && m && !m->init_setting.empty();
    }
    if (!tesseraq || window.runMetrics()->trace(id).blocks.size() < 2) return;
    poll->stop();
    auto connection = std::make_shared<QMetaObject::Connection>();
    *connection = QObject::connect(runs, &RunController::paused, &window, [&window, file, connection] {
      QObject::disconnect(*connection);
      QTimer::singleShot(250, &window, [&window, file] {
        window.refreshAll();
        QApplication::processEvents();
        if (!window.grab().save(file, "PNG"))
          std::fprintf(stderr, "error: cannot write screenshot %s\n", qPrintable(file));
        window.resumeRun();
      });
    });
    window.pauseRun();
  });
  poll->start();
}

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setOrganizationName("Tessera");
  QApplication::setApplicationName("Tessera Workbench");
  QApplication::setApplicationVersion(tessera::kVersion);
  // One look on every platform, and the same in screenshots as on a desktop.
  QApplication::setStyle("Fusion");

  QCommandLineParser parser;
  parser.setApplicationDescription("Tessera Workbench - quantization workbench for LLaMA-family models");
  parser.addHelpOption();
  parser.addVersionOption();
  const QCommandLineOption model_opt("model", "Open this model (llama2.c .bin or Hugging Face folder).", "P");
  const QCommandLineOption tokenizer_opt("tokenizer", "Use this tokenizer instead of the one beside the model.", "P");
  const QCommandLineOption text_opt("text", "Text file for the perplexity evaluation.", "F");
  const QCommandLineOption run_opt("run-eval", "Start the evaluation at launch.");
  const QCommandLineOption shot_opt(
      "screenshot",
      "Render the window to a PNG and exit (after the evaluation with --run-eval, after the comparison with --demo).",
      "FILE");
  const QCommandLineOption demo_opt(
      "demo",
      "Run the quick CPU baseline comparison (RTN, AWQ, OmniQuant, TesseraQ; preset cpu-quick) on stories260K.");
  const QCommandLineOption runs_opt(
      "runs-dir", "Folder for the run directories of this session (--demo: a temporary folder).", "DIR");
  const QCommandLineOption size_opt("size", "Window size WxH (default 1280x800).", "WxH");
  const QCommandLineOption session_opt("save-session",
                                       "With --demo: save the session to FILE when the comparison ends.", "FILE");
  const QCommandLineOption detail_opt(
      "detail-screenshot", "With --demo: also render a layer detail dialog (TesseraQ, block 1 gate_proj) to FILE.",
      "FILE");
  const QCommandLineOption paused_opt(
      "paused-screenshot",
      "With --demo: pause the TesseraQ run after two blocks, render the window to FILE and resume.", "FILE");
  const QCommandLineOption worker_opt("worker",
                                      "The tessera program that runs the jobs (default: the one beside the workbench); "
                                      "with --ssh, its path on the remote host.",
                                      "PATH");
  const QCommandLineOption ssh_opt(
      "ssh", "Run the jobs on another host through this ssh command line, e.g. \"ssh -p 2222 me@gpu-server\".", "CMD");
  const QCommandLineOption add_run_opt(
      "add-run",
      "Add this run directory (on the worker's host) to the session and follow it live while it is written; with "
      "--screenshot, the shot is taken once it is read.",
      "DIR");
  parser.addOptions({model_opt, tokenizer_opt, text_opt, run_opt, shot_opt, demo_opt, runs_opt, size_opt, session_opt,
                     detail_opt, paused_opt, worker_opt, ssh_opt, add_run_opt});
  parser.process(app);

  const QString screenshot = parser.value(shot_opt);
  const bool run_eval = parser.isSet(run_opt);
  // No modal dialogs where nobody can close them: screenshots and headless platforms.
  const QString platform = QGuiApplication::platformName();
  const bool headless = !screenshot.isEmpty() || platform == "offscreen" || platform == "minimal";

  MainWindow window;  // hooks the log pane into tessera::logger(), so log after this
  window.setDialogsEnabled(!headless);
  tessera::logger()->info("Tessera Workbench {} (Qt {}, {} platform)", tessera::kVersion, qVersion(),
                          platform.toStdString());

  if (parser.isSet(worker_opt) || parser.isSet(ssh_opt)) {
    tessera::widgets::WorkerEndpoint worker;
    worker.kind = parser.isSet(ssh_opt) ? tessera::widgets::WorkerEndpoint::Kind::Ssh
                                        : tessera::widgets::WorkerEndpoint::Kind::Local;
    worker.program = parser.value(worker_opt);
    worker.ssh_command = parser.value(ssh_opt);
    window.setWorker(worker);
  } else {
    window.refreshDevices();
  }

  bool opened = true;
  const bool explicit_session = parser.isSet(model_opt) || parser.isSet(tokenizer_opt) || parser.isSet(text_opt);
  if (explicit_session) {
    if (parser.isSet(model_opt)) opened = window.openModel(parser.value(model_opt)) && opened;
    if (parser.isSet(tokenizer_opt)) opened = window.openTokenizer(parser.value(tokenizer_opt)) && opened;
    if (parser.isSet(text_opt)) window.setTextPath(parser.value(text_opt));
  } else if (screenshot.isEmpty() && !parser.isSet(demo_opt)) {
    window.restoreSession();  // screenshots and the demo show only what the command line asks for
  }
  if (parser.isSet(size_opt)) {
    const QStringList wh = parser.value(size_opt).split('x');
    if (wh.size() == 2 && wh[0].toInt() > 0 && wh[1].toInt() > 0) window.resize(wh[0].toInt(), wh[1].toInt());
  }
  window.show();

  // The demo's run directories live in a temporary folder unless --runs-dir names one.
  std::unique_ptr<QTemporaryDir> demo_dir;
  if (parser.isSet(runs_opt)) window.setRunsRoot(parser.value(runs_opt));
  if (parser.isSet(demo_opt)) {
    QString root = parser.value(runs_opt);
    if (root.isEmpty()) {
      demo_dir = std::make_unique<QTemporaryDir>(QDir::tempPath() + "/tessera-demo-XXXXXX");
      root = demo_dir->path();
    }
    const QString session_file = parser.value(session_opt);
    const QString detail_file = parser.value(detail_opt);
    QObject::connect(&window, &MainWindow::queueFinished, &window, [&window, screenshot, session_file, detail_file] {
      std::vector<int> ids, finished;
      int last_finished = 0;
      for (const auto& r : window.sessionRuns()) {
        ids.push_back(r.id);
        if (r.finished()) finished.push_back(last_finished = r.id);
      }
      export_all_then(window, finished, [&window, ids, last_finished, screenshot, session_file, detail_file] {
        // Overlay every run, the heatmap diffing the first (RTN) against the last (TesseraQ).
        window.selectRuns(ids);
        if (!session_file.isEmpty()) window.saveSessionTo(session_file);
        auto shoot = [&window, screenshot] {
          // A moment for the plots' coalescing timers and the layout, then the shot.
          if (!screenshot.isEmpty())
            QTimer::singleShot(300, &window,
                               [&window, screenshot] { take_screenshot_and_quit(window, screenshot, 0); });
        };
        if (detail_file.isEmpty() || !last_finished)
          shoot();
        else
          detail_screenshot_then(window, last_finished, detail_file, shoot);
      });
    });
    if (parser.isSet(paused_opt)) pause_screenshot_during_tesseraq(window, parser.value(paused_opt));
    QTimer::singleShot(0, &window, [&window, root, screenshot] {
      if (!start_demo(window, root) && !screenshot.isEmpty()) take_screenshot_and_quit(window, screenshot, 1);
    });
    return app.exec();
  }

  if (parser.isSet(add_run_opt)) {
    opened = window.addRunDirectory(parser.value(add_run_opt)) && opened;
    if (!screenshot.isEmpty()) {
      // The shot once the run's events are replayed (or it has ended while being followed).
      auto* poll = new QTimer(&window);
      poll->setInterval(100);
      QObject::connect(poll, &QTimer::timeout, &window, [&window, poll, screenshot, opened] {
        if (window.isFollowingRuns()) return;
        poll->stop();
        std::vector<int> ids;
        for (const auto& r : window.sessionRuns()) ids.push_back(r.id);
        window.selectRuns(ids);
        QTimer::singleShot(300, &window, [&window, screenshot, opened] {
          take_screenshot_and_quit(window, screenshot, opened ? 0 : 1);
        });
      });
      poll->start();
      return app.exec();
    }
  }

  if (run_eval) {
    EvalController* controller = window.evalController();
    if (!screenshot.isEmpty()) {
      // Shot after the run, whichever way it ended; exit status 1 unless it finished.
      QObject::connect(controller, &EvalController::finished, &window,
                       [&] { take_screenshot_and_quit(window, screenshot, opened ? 0 : 1); });
      QObject::connect(controller, &EvalController::failed, &window,
                       [&] { take_screenshot_and_quit(window, screenshot, 1); });
      QObject::connect(controller, &EvalController::cancelled, &window,
                       [&] { take_screenshot_and_quit(window, screenshot, 1); });
    }
    // Started from the event loop, so the window is laid out before the first progress arrives.
    QTimer::singleShot(0, &window, [&] {
      if (!window.runEvaluation() && !screenshot.isEmpty()) take_screenshot_and_quit(window, screenshot, 1);
    });
  } else if (!screenshot.isEmpty()) {
    // Give the event loop a moment to deliver the show, resize and layout events first.
    QTimer::singleShot(200, &window, [&] { take_screenshot_and_quit(window, screenshot, opened ? 0 : 1); });
  }
  return app.exec();
}
