// The workbench's jobs in real `tessera worker` processes: a worker killed with SIGKILL at a random
// step fails the run with the signal, and Resume gives codes and perplexity identical to an
// uninterrupted run; workers that are missing, are no Tessera worker, speak another protocol
// version, write a malformed line or crash are each a clear failure; a run directory being written
// by another process is refused; a run started from a shell is followed live by the window.
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QRandomGenerator>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>
#include <csignal>
#include <memory>

#include "gui_test_main.h"
#include "gui_test_runs.h"
#include "hardening_plot.h"
#include "layer_heatmap.h"
#include "loss_plot.h"
#include "main_window.h"
#include "memory_plot.h"
#include "run_controller.h"
#include "run_metrics_store.h"
#include "test_data.h"
#include "worker_job.h"

using tessera::widgets::RunMetricsStore;
using tessera::widgets::WorkerEndpoint;
using tessera::widgets::WorkerJob;
using tessera::workbench::RunController;
using tessera::workbench::RunJob;
using tessera::workbench::RunOutcome;

namespace {
constexpr int kRunTimeoutMs = 240000;
const char* kModel = "models/stories260K/stories260K.bin";
const char* kCalib = "text/tinystories/train-sample.txt";
const char* kText = "text/tinystories/sample.txt";

tessera::pipeline::RunConfig tesseraqConfig(const std::string& model, const std::string& calib) {
  return tessera_test::ci_run(model, calib, "tesseraq", 2, 40);
}

std::size_t stepCount(const RunMetricsStore& store, int id) { return store.trace(id).steps.size(); }

QByteArray fileBytes(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

// A stand-in for the worker program: a shell script.
QString writeScript(const QString& dir, const QString& name, const QString& body) {
  const QString path = dir + "/" + name;
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly)) qFatal("cannot write %s", qPrintable(path));
  f.write(("#!/bin/sh\n" + body + "\n").toUtf8());
  f.close();
  f.setPermissions(f.permissions() | QFileDevice::ExeOwner);
  return path;
}

const char* kWorkerHello = R"({"type":"hello","protocol":"tessera-worker","version":"2.0","role":"worker","pid":1})";

// Runs one "devices" job on `program` and returns failed()'s message ("" when it succeeded).
QString failureOf(const QString& program) {
  WorkerEndpoint e;
  e.program = program;
  try {
    WorkerJob::runToEnd(e, "devices", tessera::protocol::Json::object(), 20000);
  } catch (const std::exception& ex) {
    return QString::fromUtf8(ex.what());
  }
  return QString();
}
}  // namespace

class TestGuiWorker : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void initTestCase();
  void brokenWorkersFailWithTheReason();
  void killedWorkerResumesToIdenticalCodes();
  void runDirectoryBeingWrittenIsRefused();
  void shellRunIsFollowedLive();
  void gpuRunReplaysIntoTheWindow();

 private:
  QString root_;
};

void TestGuiWorker::initTestCase() {
  tessera_test::use_fresh_settings("Tessera Worker Test");
  root_ = QString::fromStdString(tessera_test::fresh_temp_dir("gui-worker"));
}

void TestGuiWorker::brokenWorkersFailWithTheReason() {
  QString m = failureOf(root_ + "/no-such-tessera");
  QVERIFY2(m.contains("Cannot start the worker") && m.contains("no-such-tessera"), qPrintable(m));

  // Another program: echo prints its arguments; cat answers our own hello back (not a worker's).
  m = failureOf("/bin/echo");
  QVERIFY2(m.contains("is not a Tessera worker: its first line is \"worker\""), qPrintable(m));
  m = failureOf(writeScript(root_, "echo-back", "exec cat"));
  QVERIFY2(m.contains("is not a Tessera worker: its hello is not a worker's"), qPrintable(m));

  m = failureOf(
      writeScript(root_, "newer",
                  R"(echo '{"type":"hello","protocol":"tessera-worker","version":"3.0","role":"worker"}'; sleep 30)"));
  QVERIFY2(m.contains("speaks worker protocol 3.0") && m.contains("this side speaks 2.0"), qPrintable(m));

  m = failureOf(writeScript(root_, "garbage",
                            QString("echo '%1'; echo 'Segmentation fault (core dumped)'; sleep 30").arg(kWorkerHello)));
  QVERIFY2(m.contains("broke the worker protocol") && m.contains("Segmentation fault (core dumped)"), qPrintable(m));

  m = failureOf(writeScript(root_, "crash",
                            QString("echo '%1'; echo 'CUDA out of memory' >&2; kill -KILL $$").arg(kWorkerHello)));
  QVERIFY2(m.contains("killed by signal 9") && m.contains("CUDA out of memory"), qPrintable(m));

  m = failureOf(writeScript(root_, "quits", QString("echo '%1'; echo 'disk full' >&2; exit 4").arg(kWorkerHello)));
  QVERIFY2(m.contains("exited with status 4") && m.contains("disk full"), qPrintable(m));
}

void TestGuiWorker::killedWorkerResumesToIdenticalCodes() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  TESSERA_REQUIRE_DATA(text, kText);
  auto store = std::make_shared<RunMetricsStore>();
  RunController controller(store);
  QSignalSpy finished(&controller, &RunController::finished);
  QSignalSpy failed(&controller, &RunController::failed);

  RunJob job;
  job.config = tesseraqConfig(model, calib);
  job.eval_text = QString::fromStdString(text);

  // The reference: the same run, uninterrupted.
  job.run_id = 1;
  job.run_dir = root_ + "/uninterrupted";
  QVERIFY(controller.start(job));
  QVERIFY(finished.wait(kRunTimeoutMs) || !failed.isEmpty());
  QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
  const auto reference = finished.takeFirst().at(0).value<RunOutcome>();

  // Killed at a random step (5 blocks x 2 iterations x 40 steps), then resumed.
  const int kill_at = QRandomGenerator::global()->bounded(45, 330);
  qInfo("SIGKILL after %d step events", kill_at);
  job.run_id = 2;
  job.run_dir = root_ + "/killed";
  QVERIFY(controller.start(job));
  QTRY_VERIFY_WITH_TIMEOUT(stepCount(*store, 2) >= static_cast<std::size_t>(kill_at), kRunTimeoutMs);
  const qint64 pid = controller.workerPid();
  QVERIFY(pid > 0);
  QCOMPARE(::kill(static_cast<pid_t>(pid), SIGKILL), 0);
  QVERIFY(failed.wait(20000));
  const QString message = failed.takeFirst().at(1).toString();
  QVERIFY2(message.contains("killed by signal 9"), qPrintable(message));
  QCOMPARE(store->trace(2).progress.phase, std::string("failed"));
  const std::size_t blocks_before = store->trace(2).blocks.size();
  QVERIFY(blocks_before < 5);

  job.resume = true;
  QVERIFY(controller.start(job));
  QVERIFY(finished.wait(kRunTimeoutMs) || !failed.isEmpty());
  QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
  const auto resumed = finished.takeFirst().at(0).value<RunOutcome>();
  qInfo("perplexity uninterrupted %.9f, killed after %zu blocks and resumed %.9f", reference.perplexity, blocks_before,
        resumed.perplexity);
  QCOMPARE(resumed.perplexity, reference.perplexity);
  const QString differing = tessera_test::differing_block_file(reference.run_dir, resumed.run_dir, 5);
  QVERIFY2(differing.isEmpty(), qPrintable("codes differ in " + differing));
}

void TestGuiWorker::runDirectoryBeingWrittenIsRefused() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  auto store = std::make_shared<RunMetricsStore>();
  RunController writer(store), intruder(store);
  QSignalSpy failed(&intruder, &RunController::failed);
  QSignalSpy cancelled(&writer, &RunController::cancelled);
  RunJob job;
  job.config = tesseraqConfig(model, calib);
  job.config.settings.set("tesseraq", "steps", 400);
  job.run_id = 1;
  job.run_dir = root_ + "/locked";
  QVERIFY(writer.start(job));
  QTRY_VERIFY_WITH_TIMEOUT(stepCount(*store, 1) >= 1, kRunTimeoutMs);
  const QByteArray manifest = fileBytes(job.run_dir + "/run.json");
  job.run_id = 2;
  job.resume = true;
  QVERIFY(intruder.start(job));
  QVERIFY(failed.wait(60000));
  const QString message = failed.first().at(1).toString();
  QVERIFY2(message.contains("is being written by another process (pid "), qPrintable(message));
  QCOMPARE(fileBytes(job.run_dir + "/run.json"), manifest);  // nothing of the writer's was touched
  writer.cancel();
  QVERIFY(cancelled.wait(20000));
}

void TestGuiWorker::shellRunIsFollowedLive() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  const QString dir = root_ + "/from-shell";
  // Started from a shell, as on a server: the window knows nothing of it.
  QProcess shell;
  shell.setProgram(QString::fromStdString(tessera_test::cli_binary()));
  shell.setArguments({"quantize",
                      "--model",
                      QString::fromStdString(model),
                      "--calib",
                      QString::fromStdString(calib),
                      "--out",
                      dir,
                      "--method",
                      "tesseraq",
                      "--wbits",
                      "2",
                      "--group",
                      "32",
                      "--samples",
                      "4",
                      "--seq-len",
                      "64",
                      "--batch",
                      "4",
                      "--par-schedule",
                      "0.5,0",
                      "--par-steps",
                      "150",
                      "--par-batch",
                      "2",
                      "--log-every",
                      "1",
                      "--quiet"});
  shell.start();
  QVERIFY(shell.waitForStarted());
  QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(dir + "/events.jsonl"), 60000);

  tessera::workbench::MainWindow window;
  window.setDialogsEnabled(false);
  QVERIFY(window.addRunDirectory(dir));
  QCOMPARE(window.sessionRuns().size(), std::size_t(1));
  const int id = window.sessionRuns().front().id;
  QVERIFY2(window.sessionRuns().front().status == tessera::widgets::SessionRun::Status::Running,
           "a run being written is shown as running");
  QVERIFY(window.isFollowingRuns());
  // Steps arrive while the shell's run goes on.
  QTRY_VERIFY_WITH_TIMEOUT(window.runMetrics()->trace(id).steps.size() >= 20, 60000);
  QVERIFY(shell.state() == QProcess::Running);
  QVERIFY(shell.waitForFinished(kRunTimeoutMs));
  QCOMPARE(shell.exitCode(), 0);
  QTRY_VERIFY_WITH_TIMEOUT(!window.isFollowingRuns(), 30000);
  const auto& run = window.sessionRuns().front();
  QVERIFY(run.status == tessera::widgets::SessionRun::Status::Finished);
  QVERIFY(run.seconds > 0);
  const auto trace = window.runMetrics()->trace(id);
  QCOMPARE(trace.blocks.size(), std::size_t(5));
  QCOMPARE(trace.layers.size(), std::size_t(5 * 7));
  QCOMPARE(trace.steps.size(), std::size_t(5 * 2 * 150));
  QVERIFY(!trace.memory.empty());
}

// tests/data/gpu-run-stories260K: run.json and events.jsonl of a TesseraQ run (W2 g32, paper10 x 100
// steps, 64 x 256 calibration) that the CUDA build's worker made on an H100
// (installers/gpu-worker-jobs.py). The window shows it from its events alone, GPU memory included.
void TestGuiWorker::gpuRunReplaysIntoTheWindow() {
  const QString fixture = QString(TESSERA_TEST_FIXTURES) + "/gpu-run-stories260K";
  QVERIFY2(QFileInfo::exists(fixture + "/events.jsonl"), qPrintable(fixture + " is missing"));
  tessera::workbench::MainWindow window;
  window.setDialogsEnabled(false);
  window.resize(1400, 900);
  window.show();
  QVERIFY(window.addRunDirectory(fixture));
  QTRY_VERIFY_WITH_TIMEOUT(!window.isFollowingRuns(), 60000);
  const auto& run = window.sessionRuns().front();
  QVERIFY(run.status == tessera::widgets::SessionRun::Status::Finished);
  QCOMPARE(run.config.device, std::string("cuda"));
  QCOMPARE(run.config.method, std::string("tesseraq"));
  QVERIFY(run.seconds > 40 && run.seconds < 70);  // 56.6 s on the H100
  QCOMPARE(run.perplexity, 14.231347608356984);   // its evaluation, recorded as an event
  QVERIFY(run.peak_memory_bytes > 50e6);
  const auto trace = window.runMetrics()->trace(run.id);
  QCOMPARE(trace.blocks.size(), std::size_t(5));
  // Its events.jsonl is of protocol 1.0 (losses in "value"/"before"): each number lands in its place.
  for (const auto& b : trace.blocks) QVERIFY(b.loss > 0 && b.loss_rtn > b.loss);
  QCOMPARE(trace.layers.size(), std::size_t(5 * 7));
  QCOMPARE(trace.steps.size(), std::size_t(5 * 10 * 100 / 5));  // every 5th of 100 steps, 10 iterations
  QCOMPARE(trace.hardening.size(), std::size_t(5 * 10));
  QVERIFY(trace.memory.back().seconds > 40);
  QVERIFY(trace.peakGpuBytes() > 50e6 && trace.peakGpuBytes() < 200e6);  // 103 MiB peak on the GPU
  window.selectRuns({run.id});
  window.refreshAll();
  QCOMPARE(window.memoryPlot()->graphCount(), 2);  // resident memory and the GPU's
  QVERIFY(window.lossPlot()->graphCount() >= 1);
  QVERIFY(!window.heatmap()->cellText(4, 6).isEmpty());
}

TESSERA_GUI_TEST_MAIN(TestGuiWorker, brokenWorkersFailWithTheReason, killedWorkerResumesToIdenticalCodes,
                      runDirectoryBeingWrittenIsRefused, shellRunIsFollowedLive, gpuRunReplaysIntoTheWindow)
#include "test_gui_worker.moc"
