#include "run_controller.h"

#include <memory>

#include "protocol/worker_protocol.h"
#include "run_event_recorder.h"
#include "worker_job.h"

namespace tessera::workbench {

RunController::RunController(std::shared_ptr<widgets::RunMetricsStore> store, QObject* parent)
    : RunExecutor(parent), store_(std::move(store)) {
  qRegisterMetaType<RunJob>();
  qRegisterMetaType<RunOutcome>();
}

RunController::~RunController() { delete job_; }  // the job's destructor ends its worker

bool RunController::start(const RunJob& job) {
  if (job_) return false;
  current_id_ = job.run_id;
  pause_requested_ = paused_ = false;
  protocol::QuantizeRequest request;
  request.config = job.config;
  request.run_dir = job.run_dir.toStdString();
  request.resume = job.resume;
  request.eval_text = job.eval_text.toStdString();
  job_ = new widgets::WorkerJob(endpoint_, "quantize", protocol::to_json(request), this);
  auto recorder = std::make_shared<RunEventRecorder>(store_, job.run_id);
  const int id = job.run_id;
  connect(job_, &widgets::WorkerJob::runEvent, this, [recorder](const rundir::RunEvent& e) { recorder->on_event(e); });
  connect(job_, &widgets::WorkerJob::progress, this,
          [this, id](const QString& stage, qint64 done, qint64 total, double) {
            store_->update(id, [&](widgets::RunTrace& t) {
              t.progress.phase = stage.toStdString();
              t.progress.step = done;
              t.progress.total_steps = total;
            });
          });
  connect(job_, &widgets::WorkerJob::paused, this, [this, id](qint64 at_request, qint64 at_pause) {
    if (!pause_requested_ || paused_) return;  // resumed before the worker reached its pause
    pause_step_events_ = {at_request, at_pause};
    paused_ = true;
    emit paused(id);
  });
  connect(job_, &widgets::WorkerJob::succeeded, this, [this, id, recorder](const protocol::Json& json) {
    protocol::QuantizeResult result;
    try {
      result = protocol::quantize_result_from_json(json);
    } catch (const std::exception& e) {
      recorder->setPhase("failed");
      finishRun();
      emit failed(id, tr("the worker's result is malformed: %1").arg(QString::fromUtf8(e.what())));
      return;
    }
    recorder->setPhase("finished");
    RunOutcome outcome;
    outcome.run_id = id;
    outcome.run_dir = QString::fromStdString(result.report.run_dir);
    outcome.calibration_sha256 = QString::fromStdString(result.report.calibration_sha256);
    outcome.seconds = result.report.seconds;
    outcome.perplexity = result.perplexity;
    outcome.peak_memory_bytes =
        result.report.peak_gpu_bytes > 0 ? result.report.peak_gpu_bytes : result.report.peak_rss_bytes;
    finishRun();
    emit finished(outcome);
  });
  connect(job_, &widgets::WorkerJob::failed, this, [this, id, recorder](const QString& message) {
    recorder->setPhase("failed");
    finishRun();
    emit failed(id, message);
  });
  connect(job_, &widgets::WorkerJob::cancelled, this, [this, id, recorder] {
    cancel_step_events_ = job_->cancelStepEvents();
    recorder->setPhase("cancelled");
    finishRun();
    emit cancelled(id);
  });
  job_->start();
  emit started(job.run_id);
  return true;
}

qint64 RunController::workerPid() const { return job_ ? job_->workerPid() : 0; }

void RunController::pause() {
  if (!job_ || pause_requested_) return;
  pause_requested_ = true;
  job_->pause();
}

void RunController::resume() {
  if (!job_ || !pause_requested_) return;
  job_->resume();
  // A resume before the worker reached its pause simply cancels the pause; resumed() is emitted
  // all the same, so that the buttons return to "running".
  pause_requested_ = paused_ = false;
  emit resumed(current_id_);
}

void RunController::cancel() {
  if (job_) job_->cancel();
}

void RunController::finishRun() {
  pause_requested_ = paused_ = false;
  job_->release();  // deleted once its worker has exited
  job_ = nullptr;
}

}  // namespace tessera::workbench
