// RunController drives real quantization runs of stories260K in `tessera worker` processes: RTN and AWQ end
// with a perplexity and fill the run store; a TesseraQ run pauses, resumes and cancels within one
// optimisation step; a bad setting fails naming it; the GUI thread keeps turning while the plots
// redraw from the store. The finished RTN run is then exported through the export dialog and its
// layer detail read back.
#include <QDir>
#include <QFileInfo>
#include <QProcess>
#include <QSignalSpy>
#include <algorithm>
#include <memory>

#include "event_loop_gap.h"
#include "export_dialog.h"
#include "gui_test_main.h"
#include "gui_test_runs.h"
#include "hardening_plot.h"
#include "loss_plot.h"
#include "memory_plot.h"
#include "run_controller.h"
#include "run_metrics_store.h"
#include "test_data.h"
#include "worker_job.h"

using tessera::pipeline::RunConfig;
using tessera::widgets::RunMetricsStore;
using tessera::widgets::RunTrace;
using tessera::workbench::RunController;
using tessera::workbench::RunJob;
using tessera::workbench::RunOutcome;

namespace {
constexpr int kRunTimeoutMs = 240000;
constexpr const char* kModel = "models/stories260K/stories260K.bin";
constexpr const char* kCalib = "text/tinystories/train-sample.txt";
constexpr const char* kText = "text/tinystories/sample.txt";

RunConfig tinyConfig(const std::string& model, const std::string& calib, const std::string& method) {
  RunConfig c;
  c.model = model;
  c.calib = calib;
  c.method = method;
  c.weight.bits = 3;
  c.weight.group_size = 32;
  tessera_test::shrink_for_ci(c, 30);
  return c;
}

std::size_t stepCount(const RunMetricsStore& store, int id) { return store.trace(id).steps.size(); }
}  // namespace

class TestGuiRunController : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void initTestCase();
  void rtnAndAwqFinishWithPerplexityAndStats();
  void tesseraqPausesResumesAndCancelsWithinAStep();
  void badSettingFailsNamingIt();
  void guiThreadNeverBlockedDuringRun();
  void exportDialogExportsFinishedRun();
  void layerDetailOfRtnRunMatchesRtn();

 private:
  QString root_;
  QString rtn_dir_;  // kept for the export and detail tests
};

void TestGuiRunController::initTestCase() { root_ = QString::fromStdString(tessera_test::fresh_temp_dir("gui-runs")); }

void TestGuiRunController::rtnAndAwqFinishWithPerplexityAndStats() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  TESSERA_REQUIRE_DATA(text, kText);
  auto store = std::make_shared<RunMetricsStore>();
  RunController controller(store);
  QSignalSpy started(&controller, &RunController::started);
  QSignalSpy finished(&controller, &RunController::finished);
  QSignalSpy failed(&controller, &RunController::failed);
  int id = 0;
  for (const char* method : {"rtn", "awq"}) {
    ++id;
    RunJob job;
    job.run_id = id;
    job.config = tinyConfig(model, calib, method);
    job.run_dir = root_ + "/" + method;
    job.eval_text = QString::fromStdString(text);
    QVERIFY(controller.start(job));
    QVERIFY2(!controller.start(job), "a second start while running must be refused");
    QVERIFY(finished.wait(kRunTimeoutMs));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
    QVERIFY(!controller.isRunning());
    const auto outcome = finished.takeLast().at(0).value<RunOutcome>();
    QCOMPARE(outcome.run_id, id);
    QVERIFY(outcome.perplexity > 1 && outcome.perplexity < 1000);
    QCOMPARE(outcome.calibration_sha256.size(), 64);
    QVERIFY(outcome.peak_memory_bytes > 0);
    QVERIFY(QFileInfo::exists(outcome.run_dir + "/run.json"));
    const RunTrace t = store->trace(id);
    QCOMPARE(t.progress.total_blocks, static_cast<std::int64_t>(5));
    QCOMPARE(t.blocks.size(), static_cast<std::size_t>(5));
    QCOMPARE(t.layers.size(), static_cast<std::size_t>(5 * 7));
    QCOMPARE(t.progress.phase, std::string("finished"));
    QVERIFY(t.steps.empty());  // RTN and AWQ do not optimise per step
    for (const auto& b : t.blocks) QVERIFY(b.loss > 0 && b.loss_rtn > 0);
  }
  QCOMPARE(started.count(), 2);
  rtn_dir_ = root_ + "/rtn";
}

void TestGuiRunController::tesseraqPausesResumesAndCancelsWithinAStep() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  auto store = std::make_shared<RunMetricsStore>();
  RunController controller(store);
  QSignalSpy paused(&controller, &RunController::paused);
  QSignalSpy resumed(&controller, &RunController::resumed);
  QSignalSpy finished(&controller, &RunController::finished);
  QSignalSpy failed(&controller, &RunController::failed);
  QSignalSpy cancelled(&controller, &RunController::cancelled);
  RunJob job;
  job.run_id = 7;
  job.config = tinyConfig(model, calib, "tesseraq");
  job.config.settings.set("tesseraq", "steps", 200);  // long enough to steer: 5 blocks x 2 iterations x 200 steps
  job.run_dir = root_ + "/tesseraq-steered";
  QVERIFY(controller.start(job));

  QTRY_VERIFY_WITH_TIMEOUT(stepCount(*store, 7) >= 3, kRunTimeoutMs);
  const std::size_t at_pause_request = stepCount(*store, 7);
  controller.pause();
  QVERIFY(paused.wait(10000));
  QVERIFY(controller.isPaused());
  const std::size_t at_paused = stepCount(*store, 7);
  // The worker stopped within one step of receiving the request (steps already in the pipe when
  // the request was sent arrive here as well, so the window's own count may have grown more).
  const auto [worker_at_request, worker_at_pause] = controller.lastPauseStepEvents();
  qInfo("pause: the window had %zu steps when it asked, the worker %lld when the request arrived, paused at %lld",
        at_pause_request, worker_at_request, worker_at_pause);
  QVERIFY(worker_at_request >= static_cast<qint64>(at_pause_request));
  QVERIFY2(worker_at_pause <= worker_at_request + 1,
           qPrintable(QString("paused %1 steps after the request arrived").arg(worker_at_pause - worker_at_request)));
  QCOMPARE(static_cast<qint64>(at_paused), worker_at_pause);  // every step it sent has arrived
  QTest::qWait(500);                                          // nothing moves while paused
  QCOMPARE(stepCount(*store, 7), at_paused);

  controller.resume();
  QCOMPARE(resumed.count(), 1);
  QVERIFY(!controller.isPaused());
  QTRY_VERIFY_WITH_TIMEOUT(stepCount(*store, 7) >= at_paused + 3, 30000);
  // A second pause is reported as well (each pause once, none after its resume).
  controller.pause();
  QVERIFY(paused.wait(10000));
  QCOMPARE(paused.count(), 2);
  controller.resume();
  QTRY_VERIFY_WITH_TIMEOUT(stepCount(*store, 7) >= at_paused + 6, 30000);
  QCOMPARE(paused.count(), 2);

  const std::size_t at_cancel = stepCount(*store, 7);
  controller.cancel();
  QVERIFY(cancelled.wait(10000));
  const auto [cancel_at_request, cancel_at_end] = controller.lastCancelStepEvents();
  QVERIFY(cancel_at_request >= static_cast<qint64>(at_cancel));
  QVERIFY2(cancel_at_end <= cancel_at_request + 1, "the run went on for more than one step after cancel");
  QCOMPARE(static_cast<qint64>(stepCount(*store, 7)), cancel_at_end);
  QTest::qWait(200);
  QCOMPARE(cancelled.count(), 1);
  QCOMPARE(finished.count(), 0);
  QCOMPARE(failed.count(), 0);
  QVERIFY(!controller.isRunning());
  QCOMPARE(store->trace(7).progress.phase, std::string("cancelled"));

  // Cancel while paused also ends the run (the pause wait watches the stop flag).
  job.run_id = 8;
  job.run_dir = root_ + "/tesseraq-cancel-paused";
  QVERIFY(controller.start(job));
  QTRY_VERIFY_WITH_TIMEOUT(stepCount(*store, 8) >= 1, kRunTimeoutMs);
  controller.pause();
  QVERIFY(paused.wait(10000));
  controller.cancel();
  QVERIFY(cancelled.wait(10000));
  QCOMPARE(cancelled.last().at(0).toInt(), 8);
}

void TestGuiRunController::badSettingFailsNamingIt() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  auto store = std::make_shared<RunMetricsStore>();
  RunController controller(store);
  QSignalSpy failed(&controller, &RunController::failed);
  RunJob job;
  job.run_id = 3;
  job.config = tinyConfig(model, calib, "rtn");
  job.config.seq_len = 4096;  // stories260K's context is 512
  job.run_dir = root_ + "/too-long";
  QVERIFY(controller.start(job));
  QVERIFY(failed.wait(kRunTimeoutMs));
  const QString message = failed.first().at(1).toString();
  QVERIFY2(message.contains("seq_len") && message.contains("512"), qPrintable(message));
  QCOMPARE(store->trace(3).progress.phase, std::string("failed"));
}

void TestGuiRunController::guiThreadNeverBlockedDuringRun() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  TESSERA_REQUIRE_DATA(text, kText);
  auto store = std::make_shared<RunMetricsStore>();
  RunController controller(store);
  // The plots redraw from the store on their timers during the run, as in the window.
  tessera::widgets::LossPlot loss(store);
  tessera::widgets::HardeningPlot hardening(store);
  tessera::widgets::MemoryPlot memory(store);
  for (tessera::widgets::RunPlot* p : std::initializer_list<tessera::widgets::RunPlot*>{&loss, &hardening, &memory}) {
    p->resize(480, 320);
    p->setRuns({{5, "tesseraq", Qt::blue}});
    p->show();
  }
  QSignalSpy finished(&controller, &RunController::finished);
  QSignalSpy failed(&controller, &RunController::failed);

  tessera_test::EventLoopGapMeter gaps;
  RunJob job;
  job.run_id = 5;
  job.config = tinyConfig(model, calib, "tesseraq");
  job.run_dir = root_ + "/tesseraq-timed";
  job.eval_text = QString::fromStdString(text);
  gaps.start();
  QVERIFY(controller.start(job));
  QVERIFY(finished.wait(kRunTimeoutMs) || !failed.isEmpty());
  gaps.stop();
  QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
  const qint64 run_ms = gaps.elapsedMs();
  qInfo("event loop: %d ticks over %lld ms, longest gap %lld ms; loss plot rebuilt %d times", gaps.ticks(), run_ms,
        gaps.maxGapMs(), loss.rebuildCount());
  QVERIFY2(gaps.problem().isEmpty(), qPrintable(gaps.problem()));
  // Coalescing: at most one rebuild per 40 ms tick (plus the ones setRuns asked for).
  QVERIFY(loss.rebuildCount() <= run_ms / tessera::widgets::RunPlot::kTickMs + 3);
  const RunTrace t = store->trace(5);
  QCOMPARE(t.steps.size(), static_cast<std::size_t>(5 * 2 * 30));
  QCOMPARE(t.hardening.size(), static_cast<std::size_t>(5 * 2));
  // The last iteration's target is soft fraction 0: (almost) every variable hardened; elements
  // exactly at 0.5 may stay soft.
  QCOMPARE(t.hardening.back().target, 1.0);
  QVERIFY(t.hardening.back().reached > 0.99);
  QVERIFY(std::is_sorted(t.steps.begin(), t.steps.end(), [](const auto& a, const auto& b) { return a.x < b.x; }));
}

void TestGuiRunController::exportDialogExportsFinishedRun() {
  if (rtn_dir_.isEmpty()) QSKIP("needs the RTN run of rtnAndAwqFinishWithPerplexityAndStats");
  tessera::widgets::ExportDialog dialog({{1, "rtn W3 g32 #1", rtn_dir_}}, 1, tessera::widgets::WorkerEndpoint());
  QVERIFY(dialog.isFormatAvailable("hf"));
  QVERIFY(dialog.selectFormat("hf"));
  const QString out = root_ + "/rtn-export";
  dialog.setOutputPath(out);
  QSignalSpy exported(&dialog, &tessera::widgets::ExportDialog::exported);
  QSignalSpy failed(&dialog, &tessera::widgets::ExportDialog::exportFailed);
  QVERIFY(dialog.startExport());
  QVERIFY(exported.wait(kRunTimeoutMs) || !failed.isEmpty());
  QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
  const auto result = exported.first().at(1).value<tessera::api::ExportResult>();
  QVERIFY(result.bytes > 0);
  QVERIFY(QFileInfo::exists(out + "/model.safetensors"));
  QVERIFY2(dialog.resultText().contains("Self-check"), qPrintable(dialog.resultText()));
  QVERIFY(dialog.resultText().contains(QString::fromStdString(result.self_check)));
  // A format id the core does not list is never offered.
  QVERIFY(!dialog.selectFormat("no-such-format"));

  // The packed and GGUF formats through the same dialog: W3 g32 fits GPTQ (stories260K's
  // down_proj, 172 inputs, does not: it is written as floats and listed with the reason) and GGUF
  // F32 (one file).
  for (const QString id : {QString("gptq"), QString("gguf-f32")}) {
    QVERIFY2(dialog.isFormatAvailable(id), qPrintable(id + ": " + dialog.formatReason(id)));
    QVERIFY(dialog.selectFormat(id));
    const QString path = root_ + "/rtn-export-" + id + (id.startsWith("gguf-") ? ".gguf" : "");
    dialog.setOutputPath(path);
    QSignalSpy done(&dialog, &tessera::widgets::ExportDialog::exported);
    QVERIFY(dialog.startExport());
    QVERIFY(done.wait(kRunTimeoutMs) || failed.size() > 0);
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
    const auto r = done.first().at(1).value<tessera::api::ExportResult>();
    QCOMPARE(QString::fromStdString(r.format), id);
    QVERIFY(QFileInfo::exists(path));
    QVERIFY(dialog.resultText().contains(QString::fromStdString(r.self_check)));
    for (const auto& layer : r.not_converted)
      QVERIFY2(dialog.resultText().contains(QString::fromStdString(layer)), qPrintable(dialog.resultText()));
    if (id == "gptq") QVERIFY(!r.not_converted.empty());
  }

  // A GGUF k-quant export lists llama.cpp's fallback types: on stories260K (widths 64 and 172, no
  // whole 256-weight super-blocks) every Linear of a Q4_K run is Q5_0 or, down_proj, F16.
  // TESSERA_SCREENSHOT_DIR=DIR saves the dialog as DIR/export-dialog-fallbacks.png.
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  const QString q4k = root_ + "/rtn-q4k";
  QProcess quantize;
  quantize.start(TESSERA_TEST_CLI_BINARY,
                 {"quantize", "--model", QString::fromStdString(model), "--calib", QString::fromStdString(calib),
                  "--method", "rtn", "--target", "gguf-q4_k", "--samples", "2", "--seq-len", "64", "--out", q4k});
  QVERIFY(quantize.waitForFinished(kRunTimeoutMs));
  QVERIFY2(quantize.exitCode() == 0, quantize.readAllStandardError().constData());
  tessera::widgets::ExportDialog k_dialog({{2, "rtn gguf-q4_k #2", q4k}}, 2, tessera::widgets::WorkerEndpoint());
  QVERIFY2(k_dialog.selectFormat("gguf-q4_k"), qPrintable(k_dialog.formatReason("gguf-q4_k")));
  k_dialog.setOutputPath(root_ + "/rtn-q4k.gguf");
  QSignalSpy k_done(&k_dialog, &tessera::widgets::ExportDialog::exported);
  QSignalSpy k_failed(&k_dialog, &tessera::widgets::ExportDialog::exportFailed);
  QVERIFY(k_dialog.startExport());
  QVERIFY(k_done.wait(kRunTimeoutMs) || !k_failed.isEmpty());
  QVERIFY2(k_failed.isEmpty(), k_failed.isEmpty() ? "" : qPrintable(k_failed.first().at(1).toString()));
  const auto k_result = k_done.first().at(1).value<tessera::api::ExportResult>();
  QCOMPARE(k_result.fallbacks.size(), std::size_t(35));
  const QString text = k_dialog.resultText();
  // One line per type and reason, then its tensors.
  QVERIFY2(text.contains("In llama.cpp's fallback types:\nQ5_0, input width 64 is not a multiple of 256 (Q4_K "
                         "super-blocks) (30 tensors): blk.0.attn_q.weight, blk.0.attn_k.weight,") &&
               text.contains("\nF16, input width 172 is not a multiple of 256 (Q4_K super-blocks) nor of 32 (Q5_0 "
                             "blocks) (5 tensors): blk.0.ffn_down.weight, blk.1.ffn_down.weight,"),
           qPrintable(text));
  const QString shots = qEnvironmentVariable("TESSERA_SCREENSHOT_DIR");
  if (!shots.isEmpty()) {
    k_dialog.show();
    QTest::qWait(100);  // the layout settles before the grab
    QVERIFY(k_dialog.grab().save(shots + "/export-dialog-fallbacks.png"));
  }
}

void TestGuiRunController::layerDetailOfRtnRunMatchesRtn() {
  if (rtn_dir_.isEmpty()) QSKIP("needs the RTN run of rtnAndAwqFinishWithPerplexityAndStats");
  // Through a worker, as the layer detail dialog asks for it.
  using tessera::widgets::WorkerJob;
  const tessera::widgets::WorkerEndpoint worker;
  const auto d = tessera::protocol::layer_detail_from_json(WorkerJob::runToEnd(
      worker, "layer_detail", {{"run_dir", rtn_dir_.toStdString()}, {"block", 2}, {"layer", "down_proj"}}));
  QCOMPARE(d.bits, 3);
  QCOMPARE(d.changed_fraction, 0.0);  // an RTN run's codes are RTN's codes
  QCOMPARE(d.code_change_counts.size(), static_cast<std::size_t>(1));
  QCOMPARE(d.code_change_counts[0], d.rows * d.cols);
  QCOMPARE(static_cast<std::int64_t>(d.scale_ratio.size()), d.rows * d.groups);
  for (double r : d.scale_ratio) QCOMPARE(r, 1.0);
  QCOMPARE(d.code_counts.size(), static_cast<std::size_t>(8));
  QVERIFY(d.dst_factors.empty());
  bool threw = false;
  try {
    WorkerJob::runToEnd(worker, "layer_detail",
                        {{"run_dir", rtn_dir_.toStdString()}, {"block", 2}, {"layer", "nonsense"}});
  } catch (const std::exception& e) {
    threw = QString(e.what()).contains("nonsense");
  }
  QVERIFY(threw);
}

TESSERA_GUI_TEST_MAIN(TestGuiRunController, rtnAndAwqFinishWithPerplexityAndStats,
                      tesseraqPausesResumesAndCancelsWithinAStep, badSettingFailsNamingIt,
                      guiThreadNeverBlockedDuringRun, exportDialogExportsFinishedRun, layerDetailOfRtnRunMatchesRtn)
#ifdef TESSERA_TEST_WITH_QT
#include "test_gui_run_controller.moc"
#endif
