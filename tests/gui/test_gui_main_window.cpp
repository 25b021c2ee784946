// The workbench window offscreen: opening a model fills the architecture view, an evaluation
// fills the plot and result, errors are logged without dialogs, paths are remembered between
// sessions, log lines from worker threads reach the pane on the GUI thread, and
// `tessera-workbench --screenshot` writes a PNG.
#include <spdlog/spdlog.h>

#include <QImage>
#include <QProcess>
#include <QProcessEnvironment>
#include <QSignalSpy>
#include <QThread>
#include <memory>
#include <thread>

#include "architecture_view.h"
#include "eval_controller.h"
#include "eval_panel.h"
#include "gui_test_main.h"
#include "log_pane.h"
#include "main_window.h"
#include "perplexity_plot.h"
#include "qt_log_sink.h"
#include "test_data.h"

using tessera::api::EvalReport;
using tessera::workbench::EvalController;
using tessera::workbench::MainWindow;

namespace {
constexpr const char* kModel = "models/stories260K/stories260K.bin";
constexpr const char* kText = "text/tinystories/sample.txt";
}  // namespace

class TestGuiMainWindow : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void initTestCase();
  void openModelShowsArchitectureAndGrabs();
  void badModelIsLoggedNotFatal();
  void evaluationFillsPlotAndResult();
  void sessionPathsAreRemembered();
  void logSinkDeliversWorkerLinesOnGuiThread();
  void screenshotOptionWritesPng();
};

void TestGuiMainWindow::initTestCase() {
  // QSettings (remembered paths) and the autosave in a folder of this process, not the user's.
  tessera_test::use_fresh_settings("Tessera Workbench Test");
}

void TestGuiMainWindow::openModelShowsArchitectureAndGrabs() {
  TESSERA_REQUIRE_DATA(model, kModel);
  MainWindow window;
  window.setDialogsEnabled(false);
  QVERIFY(window.openModel(QString::fromStdString(model)));
  QVERIFY(window.model().has_value());
  const auto* view = window.architectureView();
  QCOMPARE(view->value("Layers"), QString("5"));
  QCOMPARE(view->value("Hidden size"), QString("64"));
  QCOMPARE(view->value("Heads"), QString("8"));
  QCOMPARE(view->value("KV heads"), QString("4"));
  QVERIFY2(view->value("Parameters").startsWith("260,032"), qPrintable(view->value("Parameters")));
  QCOMPARE(view->value("Stored dtype"), QString("float32"));
  QCOMPARE(view->value("Device"), QString("cpu"));
  QCOMPARE(view->value("File"), QString("tok512.bin"));
  QVERIFY(window.windowTitle().contains("stories260K.bin"));

  window.show();
  QVERIFY(QTest::qWaitForWindowExposed(&window));
  const QPixmap shot = window.grab();
  QVERIFY(!shot.isNull());
  QCOMPARE(shot.size(), window.size());
}

void TestGuiMainWindow::badModelIsLoggedNotFatal() {
  MainWindow window;
  window.setDialogsEnabled(false);  // a dialog would block the test
  const QString missing = QString::fromStdString(tessera_test::fresh_temp_dir("gui-window")) + "/missing.bin";
  QVERIFY(!window.openModel(missing));
  QVERIFY(!window.model().has_value());
  // Logged on the GUI thread, so the line is already in the pane.
  QVERIFY2(window.logPane()->toPlainText().contains(missing), qPrintable(window.logPane()->toPlainText()));
  QVERIFY(!window.runEvaluation());  // no model: refused with a message, nothing started
  QVERIFY(!window.evalController()->isRunning());
}

void TestGuiMainWindow::evaluationFillsPlotAndResult() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(text, kText);
  MainWindow window;
  window.setDialogsEnabled(false);
  window.show();
  QVERIFY(window.openModel(QString::fromStdString(model)));
  window.setTextPath(QString::fromStdString(text));
  QSignalSpy finished(window.evalController(), &EvalController::finished);
  QVERIFY(window.runEvaluation());
  QVERIFY(window.evalPanel()->isRunning());
  QVERIFY(finished.wait(180000));
  QVERIFY(!window.evalPanel()->isRunning());
  const auto report = finished.first().at(0).value<EvalReport>();
  QCOMPARE(window.perplexityPlot()->pointCount(), static_cast<int>(report.windows));
  // The core logs the result on the worker thread; the line was queued ahead of finished().
  const QString result_line = QString("perplexity %1 over").arg(report.perplexity, 0, 'f', 4);
  QVERIFY2(window.logPane()->toPlainText().contains(result_line), qPrintable(window.logPane()->toPlainText()));
  QVERIFY(!window.grab().isNull());
}

void TestGuiMainWindow::sessionPathsAreRemembered() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(tokenizer, "models/stories260K/tok512.bin");
  TESSERA_REQUIRE_DATA(text, kText);
  {
    MainWindow first;
    first.setDialogsEnabled(false);
    QVERIFY(first.openModel(QString::fromStdString(model)));
    QVERIFY(first.openTokenizer(QString::fromStdString(tokenizer)));
    first.setTextPath(QString::fromStdString(text));
  }
  MainWindow second;
  second.setDialogsEnabled(false);
  second.restoreSession();
  QVERIFY(second.model().has_value());
  QCOMPARE(second.model()->path, model);
  QCOMPARE(second.tokenizerPath(), QString::fromStdString(tokenizer));
  QCOMPARE(second.evalPanel()->textPath(), QString::fromStdString(text));
}

void TestGuiMainWindow::logSinkDeliversWorkerLinesOnGuiThread() {
  auto sink = std::make_shared<tessera::widgets::QtLogSink>();
  spdlog::logger log("gui-test", sink);
  QThread* gui = QThread::currentThread();
  QStringList lines;
  bool on_gui_thread = true;
  // `this` (GUI thread) as context: lines emitted on the worker are queued to it.
  connect(sink.get(), &tessera::widgets::QtLogSink::lineLogged, this, [&](int level, const QString& line) {
    on_gui_thread = on_gui_thread && QThread::currentThread() == gui;
    if (level == spdlog::level::warn) lines << line;
  });
  std::thread worker([&] {
    for (int i = 0; i < 100; ++i) log.warn("worker line {}", i);
  });
  worker.join();
  QVERIFY(lines.isEmpty());  // nothing is delivered on the worker
  QTRY_COMPARE(lines.size(), 100);
  QVERIFY(on_gui_thread);
  QVERIFY(lines.first().contains("worker line 0"));
  QVERIFY(lines.last().contains("worker line 99"));
  QVERIFY(!lines.first().endsWith('\n'));
}

void TestGuiMainWindow::screenshotOptionWritesPng() {
  TESSERA_REQUIRE_DATA(model, kModel);
  const QString dir = QString::fromStdString(tessera_test::fresh_temp_dir("gui-shot"));
  const QString png = dir + "/workbench.png";
  QProcess process;
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.insert("QT_QPA_PLATFORM", "offscreen");
  env.insert("XDG_CONFIG_HOME", dir);  // the child's QSettings stay in the temporary folder
  process.setProcessEnvironment(env);
  process.setProcessChannelMode(QProcess::MergedChannels);
  process.start(TESSERA_TEST_WORKBENCH_BINARY, {"--model", QString::fromStdString(model), "--screenshot", png});
  QVERIFY(process.waitForFinished(120000));
  const QString output = QString::fromLocal8Bit(process.readAll());
  QVERIFY2(process.exitStatus() == QProcess::NormalExit && process.exitCode() == 0, qPrintable(output));
  QImage image(png);
  QVERIFY2(!image.isNull(), qPrintable("no PNG at " + png + "\n" + output));
  QCOMPARE(image.size(), QSize(1280, 800));
}

TESSERA_GUI_TEST_MAIN(TestGuiMainWindow, openModelShowsArchitectureAndGrabs, badModelIsLoggedNotFatal,
                      evaluationFillsPlotAndResult, sessionPathsAreRemembered, logSinkDeliversWorkerLinesOnGuiThread,
                      screenshotOptionWritesPng)
#ifdef TESSERA_TEST_WITH_QT
#include "test_gui_main_window.moc"
#endif
