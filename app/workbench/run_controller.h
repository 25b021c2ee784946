#pragma once
// Runs one quantization job (tessera::api::quantize, then the perplexity of the quantized model
// when an evaluation text is given) on a worker thread, mirroring EvalController. The worker
// writes every RunEvent into the RunMetricsStore under the job's run id and posts nothing per
// event: the plots poll the store on their coalescing timers, so the event loop is never flooded.
//
// Pause and cancel go through the job's StopToken, which the core polls every optimisation step,
// so both take effect within one step. Every start() ends in exactly one of finished(), failed()
// or cancelled(), emitted on the controller's (GUI) thread after the worker has returned.
#include <QObject>
#include <QString>
#include <QTimer>
#include <memory>

#include "pipeline/run_config.h"
#include "run_metrics_store.h"
#include "util/stop_token.h"

class QThread;

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
  ~RunController() override;  // cancels a running job and waits for it

  bool isRunning() const { return thread_ != nullptr; }
  bool isPaused() const { return paused_; }
  int currentRunId() const { return current_id_; }

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
  void checkPaused();

  std::shared_ptr<widgets::RunMetricsStore> store_;
  QThread* thread_ = nullptr;
  StopToken stop_;
  QTimer pause_poll_;
  int current_id_ = 0;
  bool paused_ = false;
};

}  // namespace tessera::workbench

Q_DECLARE_METATYPE(tessera::workbench::RunJob)
Q_DECLARE_METATYPE(tessera::workbench::RunOutcome)
