#include "run_controller.h"

#include <QMetaObject>
#include <QThread>
#include <algorithm>
#include <exception>

#include "api/model_jobs.h"
#include "api/quantize_jobs.h"
#include "run_event_recorder.h"
#include "util/error.h"

namespace tessera::workbench {

RunController::RunController(std::shared_ptr<widgets::RunMetricsStore> store, QObject* parent)
    : QObject(parent), store_(std::move(store)) {
  qRegisterMetaType<RunJob>();
  qRegisterMetaType<RunOutcome>();
  // The worker enters the pause at its next step; this poll turns that moment into paused().
  pause_poll_.setInterval(20);
  connect(&pause_poll_, &QTimer::timeout, this, &RunController::checkPaused);
}

RunController::~RunController() {
  if (!thread_) return;
  stop_.request_stop();  // also ends a pause
  thread_->wait();
  delete thread_;
}

bool RunController::start(const RunJob& job) {
  if (thread_) return false;
  stop_ = StopToken();  // a token stays triggered once stopped; every job gets a fresh one
  current_id_ = job.run_id;
  paused_ = false;
  const StopToken stop = stop_;
  const std::shared_ptr<widgets::RunMetricsStore> store = store_;
  // As in EvalController: the worker owns copies of everything and reports only by posting to
  // this object, whose destructor joins it first.
  thread_ = QThread::create([this, job, stop, store] {
    auto post = [this](auto fn) { QMetaObject::invokeMethod(this, std::move(fn), Qt::QueuedConnection); };
    const int id = job.run_id;
    RunEventRecorder recorder(store, id, job.config.device);
    try {
      const api::QuantizeReport report =
          api::quantize(job.config, job.run_dir.toUtf8().toStdString(), job.resume, recorder, stop);
      RunOutcome outcome;
      outcome.run_id = id;
      outcome.run_dir = QString::fromStdString(report.run_dir);
      outcome.calibration_sha256 = QString::fromStdString(report.calibration_sha256);
      outcome.seconds = report.seconds;
      if (!job.eval_text.isEmpty()) {
        recorder.setPhase("evaluating");
        api::EvalRequest request;
        request.run_dir = report.run_dir;
        request.text_path = job.eval_text.toUtf8().toStdString();
        request.device = job.config.device;
        const api::EvalReport eval = api::evaluate_perplexity(
            request,
            [&](const api::EvalProgress& p) {
              store->update(id, [&](widgets::RunTrace& t) {
                t.progress.phase = "evaluating";
                t.progress.step = p.windows_done;
                t.progress.total_steps = p.windows_total;
              });
            },
            stop);
        outcome.perplexity = eval.perplexity;
      }
      recorder.setPhase("finished");
      const widgets::RunTrace trace = store->trace(id);
      outcome.peak_memory_bytes = trace.peakGpuBytes() > 0 ? trace.peakGpuBytes() : trace.peakRssBytes();
      post([this, outcome] {
        finishRun();
        emit finished(outcome);
      });
    } catch (const Cancelled&) {
      recorder.setPhase("cancelled");
      post([this, id] {
        finishRun();
        emit cancelled(id);
      });
    } catch (const std::exception& e) {
      recorder.setPhase("failed");
      const QString message = QString::fromStdString(e.what());
      post([this, id, message] {
        finishRun();
        emit failed(id, message);
      });
    }
  });
  thread_->setObjectName("tessera-run");
  thread_->start();
  emit started(job.run_id);
  return true;
}

void RunController::pause() {
  if (!thread_ || stop_.pause_requested()) return;
  stop_.request_pause();
  pause_poll_.start();
}

void RunController::resume() {
  if (!thread_ || !stop_.pause_requested()) return;
  pause_poll_.stop();
  stop_.resume();
  paused_ = false;
  // A resume before the worker reached its pause point simply cancels the pause; resumed() is
  // emitted all the same, so that the buttons return to "running".
  emit resumed(current_id_);
}

void RunController::cancel() {
  if (thread_) stop_.request_stop();
}

void RunController::checkPaused() {
  if (!thread_) {
    pause_poll_.stop();
    return;
  }
  if (stop_.is_paused() && !paused_) {
    paused_ = true;
    pause_poll_.stop();
    emit paused(current_id_);
  }
}

void RunController::finishRun() {
  pause_poll_.stop();
  paused_ = false;
  thread_->wait();  // the worker posted its last event just before returning
  delete thread_;
  thread_ = nullptr;
}

}  // namespace tessera::workbench
