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
#include <QObject>
#include <QString>
#include <memory>

#include "pipeline/run_config.h"
#include "run_metrics_store.h"
#include "worker_endpoint.h"

namespace tessera::widgets {
class WorkerJob;
}

namespace tessera::workbench {

struct RunJob {
  int run_id = 0;
  pipeline::RunConfig config;
  QString run_dir;
  bool resume = false;
  QString eval_text;  // "" = no perplexity after quantizing
};

struct RunOutcome {
  int run_id = 0;
  QString run_dir;
  QString calibration_sha256;
  double seconds = 0;     // quantization wall time
  double perplexity = 0;  // 0 when not evaluated
  double peak_memory_bytes = 0;
};

class RunController : public QObject {
  Q_OBJECT

 public:
  explicit RunController(std::shared_ptr<widgets::RunMetricsStore> store, QObject* parent = nullptr);
  ~RunController() override;  // cancels a running job and ends its worker

  // Where the next job runs (this machine's tessera by default).
  void setWorker(const widgets::WorkerEndpoint& endpoint) { endpoint_ = endpoint; }
  bool isRunning() const { return job_ != nullptr; }
  bool isPaused() const { return paused_; }
  int currentRunId() const { return current_id_; }
  qint64 workerPid() const;  // of the running job's worker on its host; 0 when none
  // From the worker's last "paused": the step-loss events it had sent when the pause request
  // reached it, and when the job stopped (-1 before any pause).
  std::pair<qint64, qint64> lastPauseStepEvents() const { return pause_step_events_; }
  std::pair<qint64, qint64> lastCancelStepEvents() const { return cancel_step_events_; }  // likewise

 public slots:
  bool start(const tessera::workbench::RunJob& job);  // false while a job is running
  void pause();   // paused() follows once the worker waits at its next step
  void resume();  // resumed() at once
  void cancel();  // cancelled() follows unless the job had already ended

 signals:
  void started(int run_id);
  void paused(int run_id);
  void resumed(int run_id);
  void finished(const tessera::workbench::RunOutcome& outcome);
  void failed(int run_id, const QString& message);
  void cancelled(int run_id);

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

Q_DECLARE_METATYPE(tessera::workbench::RunJob)
Q_DECLARE_METATYPE(tessera::workbench::RunOutcome)
