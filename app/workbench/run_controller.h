#pragma once
// Runs one quantization job (then the perplexity of the quantized model when an evaluation text
// is given) in a `tessera worker` process (widgets::WorkerJob) on this machine or over SSH. Every
// RunEvent the worker reports goes into the RunMetricsStore under the job's run id; the plots poll
// the store on their coalescing timers, so a fast stream of events never floods the event loop.
//
// Pause and cancel travel to the worker, whose core polls them every optimisation step, so both
// take effect within one step. Every start() ends in exactly one of finished(), failed() or
// cancelled(); a worker that dies (crash, SIGKILL, out of memory, dropped connection) is failed()
// with its exit status and last stderr lines, and the run resumes from its last finished block.
#include <QString>
#include <memory>

#include "job_executors.h"
#include "run_metrics_store.h"
#include "worker_endpoint.h"

namespace tessera::widgets {
class WorkerJob;
}

namespace tessera::workbench {

class RunController : public RunExecutor {
  Q_OBJECT

 public:
  explicit RunController(std::shared_ptr<widgets::RunMetricsStore> store, QObject* parent = nullptr);
  ~RunController() override;  // cancels a running job and ends its worker

  // Where the next job runs (this machine's tessera by default).
  void setWorker(const widgets::WorkerEndpoint& endpoint) { endpoint_ = endpoint; }
  bool isRunning() const override { return job_ != nullptr; }
  bool isPaused() const override { return paused_; }
  int currentRunId() const override { return current_id_; }
  qint64 workerPid() const;  // of the running job's worker on its host; 0 when none
  // From the worker's last "paused": the step-loss events it had sent when the pause request
  // reached it, and when the job stopped (-1 before any pause).
  std::pair<qint64, qint64> lastPauseStepEvents() const { return pause_step_events_; }
  std::pair<qint64, qint64> lastCancelStepEvents() const { return cancel_step_events_; }  // likewise

 public slots:
  bool start(const tessera::workbench::RunJob& job) override;  // false while a job is running
  void pause() override;   // paused() follows once the worker waits at its next step
  void resume() override;  // resumed() at once
  void cancel() override;  // cancelled() follows unless the job had already ended

 private:
  void finishRun();

  std::shared_ptr<widgets::RunMetricsStore> store_;
  widgets::WorkerEndpoint endpoint_;
  widgets::WorkerJob* job_ = nullptr;
  int current_id_ = 0;
  bool pause_requested_ = false, paused_ = false;
  std::pair<qint64, qint64> pause_step_events_{-1, -1}, cancel_step_events_{-1, -1};
};

}  // namespace tessera::workbench
