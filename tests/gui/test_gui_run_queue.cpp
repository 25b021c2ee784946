// The run queue with stub executors (no worker, no model): runs go one after another in order, a
// failure is recorded and the queue goes on, a cancel stops everything queued, the reference
// evaluation comes first and its failure does not stop the comparison, and a failed run resumes
// in its own run directory.
#include <QSignalSpy>
#include <QtTest>
#include <vector>

#include "gui_test_main.h"
#include "run_queue.h"
#include "util/error.h"

using tessera::widgets::SessionRun;
using tessera::workbench::EvalExecutor;
using tessera::workbench::RunExecutor;
using tessera::workbench::RunJob;
using tessera::workbench::RunOutcome;
using tessera::workbench::RunQueue;

namespace {

// Takes jobs and ends them when the test says so.
class StubRuns : public RunExecutor {
 public:
  std::vector<RunJob> jobs;  // every job started, in order
  bool running = false, paused_now = false;

  bool start(const RunJob& job) override {
    if (running) return false;
    running = true;
    jobs.push_back(job);
    emit started(job.run_id);
    return true;
  }
  void pause() override {
    paused_now = true;
    emit paused(current());
  }
  void resume() override {
    paused_now = false;
    emit resumed(current());
  }
  void cancel() override {
    if (!running) return;
    running = false;
    emit cancelled(current());
  }
  bool isRunning() const override { return running; }
  bool isPaused() const override { return paused_now; }
  int currentRunId() const override { return running ? current() : 0; }

  void finish(double perplexity) {
    running = false;
    RunOutcome o;
    o.run_id = current();
    o.run_dir = jobs.back().run_dir;
    o.perplexity = perplexity;
    o.seconds = 1.5;
    emit finished(o);
  }
  void fail(const QString& why) {
    running = false;
    emit failed(current(), why);
  }

 private:
  int current() const { return jobs.empty() ? 0 : jobs.back().run_id; }
};

class StubEvals : public EvalExecutor {
 public:
  std::vector<tessera::api::EvalRequest> requests;
  bool running = false;
  bool start(const tessera::api::EvalRequest& r) override {
    requests.push_back(r);
    running = true;
    emit started();
    return true;
  }
  void cancel() override {
    if (!running) return;
    running = false;
    emit cancelled();
  }
  bool isRunning() const override { return running; }
  void finish(double perplexity) {
    running = false;
    tessera::api::EvalReport r;
    r.perplexity = perplexity;
    r.text_path = requests.back().text_path;
    emit finished(r);
  }
  void fail(const QString& why) {
    running = false;
    emit failed(why);
  }
};

std::vector<tessera::pipeline::RunConfig> baselines() {
  std::vector<tessera::pipeline::RunConfig> configs;
  for (const char* method : {"rtn", "awq", "omniquant", "tesseraq"}) {
    tessera::pipeline::RunConfig c;
    c.method = method;
    c.weight.bits = 2;
    c.weight.group_size = 32;
    configs.push_back(c);
  }
  return configs;
}

tessera::api::EvalRequest referenceRequest() {
  tessera::api::EvalRequest r;
  r.model_path = "/models/m.bin";
  r.text_path = "/text/eval.txt";
  return r;
}

}  // namespace

class TestGuiRunQueue : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void runsOneAfterAnotherAndReportsFailures();
  void referenceEvaluationComesFirstOncePerText();
  void cancelStopsTheWholeQueue();
  void failedRunResumesInItsDirectory();
  void busyQueueRefusesMore();
};

void TestGuiRunQueue::runsOneAfterAnotherAndReportsFailures() {
  StubRuns runs;
  StubEvals evals;
  RunQueue queue(&runs, &evals);
  queue.setRunsRoot("/runs");
  QSignalSpy done(&queue, &RunQueue::queueFinished);
  const auto ids = queue.enqueue(baselines(), "/text/eval.txt");
  QCOMPARE(ids.size(), std::size_t(4));
  QCOMPARE(runs.jobs.size(), std::size_t(1));  // one at a time
  QCOMPARE(runs.jobs[0].config.method, std::string("rtn"));
  QVERIFY(runs.jobs[0].run_dir.startsWith("/runs/") && runs.jobs[0].run_dir.contains("rtn-w2g32"));
  QCOMPARE(runs.jobs[0].eval_text, QString("/text/eval.txt"));
  QVERIFY(queue.findRun(ids[0])->status == SessionRun::Status::Running);
  QVERIFY(queue.findRun(ids[1])->status == SessionRun::Status::Queued);
  QVERIFY(queue.isBusy());

  runs.finish(428.9);
  QCOMPARE(runs.jobs.size(), std::size_t(2));
  QCOMPARE(runs.jobs[1].config.method, std::string("awq"));
  runs.fail("CUDA out of memory");  // the queue goes on
  QCOMPARE(runs.jobs[2].config.method, std::string("omniquant"));
  runs.pause();
  QVERIFY(queue.findRun(ids[2])->status == SessionRun::Status::Paused);
  runs.resume();
  QVERIFY(queue.findRun(ids[2])->status == SessionRun::Status::Running);
  runs.finish(33.1);
  QCOMPARE(done.count(), 0);
  runs.finish(24.6);
  QCOMPARE(done.count(), 1);
  QCOMPARE(done.first().at(0).toBool(), false);  // not cancelled
  const QStringList failures = done.first().at(1).toStringList();
  QCOMPARE(failures.size(), 1);
  QVERIFY(failures[0].contains("awq") && failures[0].contains("CUDA out of memory"));
  QVERIFY(!queue.isBusy());
  const SessionRun& awq = *queue.findRun(ids[1]);
  QVERIFY(awq.status == SessionRun::Status::Failed);
  QCOMPARE(awq.error, QString("CUDA out of memory"));
  QCOMPARE(queue.findRun(ids[3])->perplexity, 24.6);
  QVERIFY(queue.findRun(ids[3])->finished());
}

void TestGuiRunQueue::referenceEvaluationComesFirstOncePerText() {
  StubRuns runs;
  StubEvals evals;
  RunQueue queue(&runs, &evals);
  queue.enqueue(baselines(), "/text/eval.txt", referenceRequest());
  QCOMPARE(evals.requests.size(), std::size_t(1));
  QVERIFY(runs.jobs.empty());  // the runs wait for the reference
  QVERIFY(queue.isReferencePending());
  evals.finish(6.589);
  QCOMPARE(queue.referencePerplexity(), 6.589);
  QCOMPARE(queue.referenceText(), QString("/text/eval.txt"));
  QCOMPARE(runs.jobs.size(), std::size_t(1));
  for (int i = 0; i < 4; ++i) runs.finish(10);
  // Known for this text: not measured again. A single run never measures it.
  queue.enqueue(baselines(), "/text/eval.txt", referenceRequest());
  QCOMPARE(evals.requests.size(), std::size_t(1));
  for (int i = 0; i < 4; ++i) runs.finish(10);
  queue.enqueue({baselines()[0]}, "/text/other.txt", referenceRequest());
  QCOMPARE(evals.requests.size(), std::size_t(1));
  runs.finish(10);
  // Another text: measured again; when that fails, the comparison goes on without it.
  queue.enqueue(baselines(), "/text/other.txt", referenceRequest());
  QCOMPARE(evals.requests.size(), std::size_t(2));
  evals.fail("tokenizer mismatch");
  QVERIFY(!queue.isReferencePending());
  QCOMPARE(runs.jobs.size(), std::size_t(10));
}

void TestGuiRunQueue::cancelStopsTheWholeQueue() {
  StubRuns runs;
  StubEvals evals;
  RunQueue queue(&runs, &evals);
  QSignalSpy done(&queue, &RunQueue::queueFinished);
  const auto ids = queue.enqueue(baselines(), "/text/eval.txt");
  runs.finish(400);
  queue.cancel();
  QCOMPARE(done.count(), 1);
  QCOMPARE(done.first().at(0).toBool(), true);
  QVERIFY(queue.findRun(ids[0])->finished());
  for (int k = 1; k < 4; ++k) QVERIFY(queue.findRun(ids[k])->status == SessionRun::Status::Cancelled);
  QVERIFY(!queue.isBusy());
  QCOMPARE(runs.jobs.size(), std::size_t(2));  // nothing started after the cancel

  // Cancel during the reference evaluation: nothing runs.
  queue.enqueue(baselines(), "/text/new.txt", referenceRequest());
  queue.cancel();
  QCOMPARE(done.count(), 2);
  QCOMPARE(runs.jobs.size(), std::size_t(2));
  QVERIFY(!queue.isBusy());
}

void TestGuiRunQueue::failedRunResumesInItsDirectory() {
  StubRuns runs;
  StubEvals evals;
  RunQueue queue(&runs, &evals);
  const auto ids = queue.enqueue({baselines()[3]}, "/text/eval.txt");
  runs.fail("worker killed by signal 9");
  TESSERA_VERIFY_THROWS_WITH(queue.resume(12345), "only a cancelled or failed run can be resumed");
  queue.resume(ids[0]);
  QCOMPARE(runs.jobs.size(), std::size_t(2));
  QVERIFY(runs.jobs[1].resume);
  QCOMPARE(runs.jobs[1].run_dir, runs.jobs[0].run_dir);
  QVERIFY(queue.findRun(ids[0])->error.isEmpty());
  runs.finish(12.6);
  QVERIFY(queue.findRun(ids[0])->finished());
  TESSERA_VERIFY_THROWS_WITH(queue.resume(ids[0]), "only a cancelled or failed run can be resumed");
}

void TestGuiRunQueue::busyQueueRefusesMore() {
  StubRuns runs;
  StubEvals evals;
  RunQueue queue(&runs, &evals);
  queue.enqueue(baselines(), "");
  TESSERA_VERIFY_THROWS_WITH(queue.enqueue(baselines(), ""), "a run is going");
  SessionRun added;
  added.config = baselines()[1];
  const int id = queue.addRun(added);  // a run from disk joins the session, busy or not
  QCOMPARE(queue.findRun(id)->name, QString("awq W2 g32 #%1").arg(id));
  QCOMPARE(queue.runs().size(), std::size_t(5));
}

TESSERA_GUI_TEST_MAIN(TestGuiRunQueue, runsOneAfterAnotherAndReportsFailures, referenceEvaluationComesFirstOncePerText,
                      cancelStopsTheWholeQueue, failedRunResumesInItsDirectory, busyQueueRefusesMore)
#include "test_gui_run_queue.moc"
