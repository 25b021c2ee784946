#include "eval_controller.h"

#include "perplexity_plot.h"
#include "protocol/worker_protocol.h"
#include "worker_job.h"

namespace tessera::workbench {

EvalController::EvalController(std::shared_ptr<widgets::MetricsStore> store, QObject* parent)
    : EvalExecutor(parent), store_(std::move(store)) {
  qRegisterMetaType<api::EvalRequest>();
  qRegisterMetaType<api::EvalReport>();
  qRegisterMetaType<api::EvalProgress>();
}

EvalController::~EvalController() { delete job_; }  // the job's destructor ends its worker

bool EvalController::start(const api::EvalRequest& request) {
  if (job_) return false;
  if (store_) store_->clear();
  job_ = new widgets::WorkerJob(endpoint_, "evaluate", {{"request", protocol::to_json(request)}}, this);
  connect(job_, &widgets::WorkerJob::progress, this,
          [this](const QString& stage, qint64 done, qint64 total, double value) {
            api::EvalProgress p;
            p.stage = stage.toStdString();
            p.windows_done = done;
            p.windows_total = total;
            p.running_perplexity = value;
            if (store_ && p.stage == "evaluating")
              store_->append(widgets::PerplexityPlot::kSeries, static_cast<double>(done), value);
            emit progress(p);
          });
  connect(job_, &widgets::WorkerJob::succeeded, this, [this](const protocol::Json& result) {
    api::EvalReport report;
    try {
      report = protocol::eval_report_from_json(result);
    } catch (const std::exception& e) {
      finishRun();
      emit failed(tr("the worker's result is malformed: %1").arg(QString::fromUtf8(e.what())));
      return;
    }
    finishRun();
    emit finished(report);
  });
  connect(job_, &widgets::WorkerJob::failed, this, [this](const QString& message) {
    finishRun();
    emit failed(message);
  });
  connect(job_, &widgets::WorkerJob::cancelled, this, [this] {
    finishRun();
    emit cancelled();
  });
  job_->start();
  emit started();
  return true;
}

void EvalController::cancel() {
  if (job_) job_->cancel();
}

void EvalController::finishRun() {
  job_->release();  // deleted once its worker has exited
  job_ = nullptr;
}

}  // namespace tessera::workbench
