// tessera-workbench: the desktop GUI. Options open a model, tokenizer and text at start-up;
// --run-eval starts the evaluation, and --screenshot FILE renders the window to a PNG (after the
// evaluation when --run-eval is given) and exits, for tests and the README.
#include <QApplication>
#include <QCommandLineParser>
#include <QFileInfo>
#include <QTimer>
#include <cstdio>

#include "api/model_jobs.h"
#include "eval_controller.h"
#include "main_window.h"
#include "perplexity_plot.h"
#include "util/log.h"
#include "util/version.h"

using tessera::workbench::EvalController;
using tessera::workbench::MainWindow;

namespace {

// Renders the window as it is on screen (QWidget::grab paints it into a pixmap, which also works
// on the offscreen platform) and quits with `exit_code`, or 1 if the file cannot be written.
void take_screenshot_and_quit(MainWindow& window, const QString& file, int exit_code) {
  window.perplexityPlot()->refresh();
  window.perplexityPlot()->replot();
  QApplication::processEvents();
  if (!window.grab().save(file, "PNG")) {
    std::fprintf(stderr, "error: cannot write screenshot %s\n", qPrintable(file));
    exit_code = 1;
  } else {
    tessera::logger()->info("screenshot written to {}", file.toStdString());
  }
  QApplication::exit(exit_code);
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
  const QCommandLineOption shot_opt("screenshot", "Render the window to a PNG and exit (after the evaluation with --run-eval).", "FILE");
  parser.addOptions({model_opt, tokenizer_opt, text_opt, run_opt, shot_opt});
  parser.process(app);

  const QString screenshot = parser.value(shot_opt);
  const bool run_eval = parser.isSet(run_opt);
  // No modal dialogs where nobody can close them: screenshots and headless platforms.
  const QString platform = QGuiApplication::platformName();
  const bool headless = !screenshot.isEmpty() || platform == "offscreen" || platform == "minimal";

  tessera::api::initialize_runtime(/*reserved_cores=*/1);
  MainWindow window;  // hooks the log pane into tessera::logger(), so log after this
  window.setDialogsEnabled(!headless);
  tessera::logger()->info("Tessera Workbench {} (Qt {}, {} platform)", tessera::kVersion, qVersion(),
                          platform.toStdString());

  bool opened = true;
  const bool explicit_session = parser.isSet(model_opt) || parser.isSet(tokenizer_opt) || parser.isSet(text_opt);
  if (explicit_session) {
    if (parser.isSet(model_opt)) opened = window.openModel(parser.value(model_opt)) && opened;
    if (parser.isSet(tokenizer_opt)) opened = window.openTokenizer(parser.value(tokenizer_opt)) && opened;
    if (parser.isSet(text_opt)) window.setTextPath(parser.value(text_opt));
  } else if (screenshot.isEmpty()) {
    window.restoreSession();  // screenshots show only what the command line asks for
  }
  window.show();

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
