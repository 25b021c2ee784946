// EvalController runs real evaluations of stories260K on a worker thread and reports back on the
// GUI thread: the reference perplexity, cancellation, errors that name the file, and an event
// loop that keeps turning during the run.
#include <QSignalSpy>
#include <QThread>
#include <algorithm>
#include <memory>

#include "eval_controller.h"
#include "event_loop_gap.h"
#include "gui_test_main.h"
#include "metrics_store.h"
#include "perplexity_plot.h"
#include "test_data.h"

using tessera::api::EvalProgress;
using tessera::api::EvalReport;
using tessera::api::EvalRequest;
using tessera::widgets::MetricsStore;
using tessera::widgets::PerplexityPlot;
using tessera::workbench::EvalController;

namespace {
constexpr int kRunTimeoutMs = 180000;  // a full stories260K run takes ~5 s on 2 cores
constexpr const char* kModel = "models/stories260K/stories260K.bin";
constexpr const char* kText = "text/tinystories/sample.txt";
// `tessera eval` on the same files, CPU fp32, default windows of 512 (text read with universal
// newlines: 15,537 tokens).
constexpr double kReferencePerplexity = 5.558252;
}  // namespace

class TestGuiEvalController : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void initTestCase();
  void finishesWithReferencePerplexity();
  void cancelDuringRunEmitsCancelledOnly();
  void badTextPathFailsNamingTheFile();
  void guiThreadKeepsProcessingEvents();
};

void TestGuiEvalController::initTestCase() {}

void TestGuiEvalController::finishesWithReferencePerplexity() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(text, kText);
  auto store = std::make_shared<MetricsStore>();
  EvalController controller(store);
  QSignalSpy started(&controller, &EvalController::started);
  QSignalSpy progress(&controller, &EvalController::progress);
  QSignalSpy finished(&controller, &EvalController::finished);
  QSignalSpy failed(&controller, &EvalController::failed);
  QSignalSpy cancelled(&controller, &EvalController::cancelled);

  // Every signal must arrive on the controller's thread, not the worker's.
  bool all_on_gui_thread = true;
  QThread* gui = QThread::currentThread();
  auto check_thread = [&] { all_on_gui_thread = all_on_gui_thread && QThread::currentThread() == gui; };
  connect(&controller, &EvalController::progress, this, check_thread, Qt::DirectConnection);
  connect(&controller, &EvalController::finished, this, check_thread, Qt::DirectConnection);

  EvalRequest request;
  request.model_path = model;
  request.text_path = text;
  QVERIFY(controller.start(request));
  QCOMPARE(started.count(), 1);
  QVERIFY(controller.isRunning());
  QVERIFY2(!controller.start(request), "a second start while running must be refused");

  QVERIFY(finished.wait(kRunTimeoutMs));
  QCOMPARE(failed.count(), 0);
  QCOMPARE(cancelled.count(), 0);
  QVERIFY(!controller.isRunning());
  QVERIFY(all_on_gui_thread);

  const auto report = finished.takeFirst().at(0).value<EvalReport>();
  TESSERA_COMPARE_RELATIVE(report.perplexity, kReferencePerplexity, 1e-4);
  QCOMPARE(report.windows, static_cast<std::int64_t>(30));
  QCOMPARE(report.seq_len, static_cast<std::int64_t>(512));
  QCOMPARE(report.device, std::string("cpu"));

  // Progress: the stages in order, then one signal per window ending at the final perplexity.
  QVERIFY(progress.count() >= 2 + 30);
  QCOMPARE(progress.first().at(0).value<EvalProgress>().stage, std::string("loading"));
  const auto last = progress.last().at(0).value<EvalProgress>();
  QCOMPARE(last.stage, std::string("evaluating"));
  QCOMPARE(last.windows_done, last.windows_total);
  TESSERA_COMPARE_RELATIVE(last.running_perplexity, report.perplexity, 1e-9);

  // The worker fed the plot's series: one point per window, the last one the final value.
  const auto points = store->read(PerplexityPlot::kSeries, 0).points;
  QCOMPARE(static_cast<int>(points.size()), 30);
  QCOMPARE(points.back().x, 30.0);
  TESSERA_COMPARE_RELATIVE(points.back().y, report.perplexity, 1e-9);
}

void TestGuiEvalController::cancelDuringRunEmitsCancelledOnly() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(text, kText);
  EvalController controller;
  QSignalSpy finished(&controller, &EvalController::finished);
  QSignalSpy failed(&controller, &EvalController::failed);
  QSignalSpy cancelled(&controller, &EvalController::cancelled);
  // Cancel once the evaluation loop has begun (first window done of 30), as a user would.
  std::int64_t cancelled_at = -1;
  connect(&controller, &EvalController::progress, this, [&](const EvalProgress& p) {
    if (p.stage == "evaluating" && cancelled_at < 0) {
      cancelled_at = p.windows_done;
      controller.cancel();
    }
  });

  EvalRequest request;
  request.model_path = model;
  request.text_path = text;
  QVERIFY(controller.start(request));
  QVERIFY(cancelled.wait(kRunTimeoutMs));
  QVERIFY(cancelled_at >= 1 && cancelled_at < 30);
  QTest::qWait(200);  // nothing else may trail behind
  QCOMPARE(cancelled.count(), 1);
  QCOMPARE(finished.count(), 0);
  QCOMPARE(failed.count(), 0);
  QVERIFY(!controller.isRunning());

  // A stop token stays triggered; the next run must get a fresh one and not stop at once.
  QSignalSpy progress(&controller, &EvalController::progress);
  cancelled_at = -1;
  QVERIFY(controller.start(request));
  QVERIFY(cancelled.wait(kRunTimeoutMs));  // cancelled again by the handler above, mid-run
  bool reached_evaluation = false;
  for (const auto& args : progress) reached_evaluation |= args.at(0).value<EvalProgress>().stage == "evaluating";
  QVERIFY2(reached_evaluation, "the second run stopped before evaluating: stale stop token");
  QCOMPARE(finished.count(), 0);
}

void TestGuiEvalController::badTextPathFailsNamingTheFile() {
  TESSERA_REQUIRE_DATA(model, kModel);
  EvalController controller;
  QSignalSpy finished(&controller, &EvalController::finished);
  QSignalSpy failed(&controller, &EvalController::failed);
  QSignalSpy cancelled(&controller, &EvalController::cancelled);
  const std::string missing = tessera_test::fresh_temp_dir("gui-eval") + "/no-such-text.txt";

  EvalRequest request;
  request.model_path = model;
  request.text_path = missing;
  QVERIFY(controller.start(request));
  QVERIFY(failed.wait(kRunTimeoutMs));
  const QString message = failed.takeFirst().at(0).toString();
  QVERIFY2(message.contains(QString::fromStdString(missing)), qPrintable("message: " + message));
  QCOMPARE(finished.count(), 0);
  QCOMPARE(cancelled.count(), 0);
  QVERIFY(!controller.isRunning());
}

void TestGuiEvalController::guiThreadKeepsProcessingEvents() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(text, kText);
  EvalController controller;
  QSignalSpy finished(&controller, &EvalController::finished);

  tessera_test::EventLoopGapMeter gaps;
  EvalRequest request;
  request.model_path = model;
  request.text_path = text;
  gaps.start();
  QVERIFY(controller.start(request));
  QVERIFY(finished.wait(kRunTimeoutMs));
  gaps.stop();
  const qint64 run_ms = gaps.elapsedMs();
  qInfo("event loop: %d ticks over %lld ms, longest gap %lld ms", gaps.ticks(), run_ms, gaps.maxGapMs());
  QVERIFY2(gaps.problem().isEmpty(), qPrintable(gaps.problem()));
}

TESSERA_GUI_TEST_MAIN(TestGuiEvalController, finishesWithReferencePerplexity, cancelDuringRunEmitsCancelledOnly,
                      badTextPathFailsNamingTheFile, guiThreadKeepsProcessingEvents)
#ifdef TESSERA_TEST_WITH_QT
#include "test_gui_eval_controller.moc"
#endif
