#pragma once
// Runs a perplexity evaluation in a `tessera worker` process (widgets::WorkerJob), on this machine
// or over SSH; its progress reaches the GUI thread as signals and the running perplexity goes into
// the MetricsStore for the plot.
//
// Every start() ends in exactly one of finished(), failed() or cancelled(), after which a slot may
// start the next run.
#include <QObject>
#include <QString>
#include <memory>

#include "api_metatypes.h"
#include "job_executors.h"
#include "metrics_store.h"
#include "worker_endpoint.h"

namespace tessera::widgets {
class WorkerJob;
}

namespace tessera::workbench {

class EvalController : public EvalExecutor {
  Q_OBJECT

 public:
  // Running perplexity is appended to `store` (series PerplexityPlot::kSeries) by the worker; the
  // store is cleared at each start. `store` may be null.
  explicit EvalController(std::shared_ptr<widgets::MetricsStore> store = nullptr, QObject* parent = nullptr);
  ~EvalController() override;  // cancels a running evaluation and ends its worker

  void setWorker(const widgets::WorkerEndpoint& endpoint) { endpoint_ = endpoint; }
  bool isRunning() const override { return job_ != nullptr; }

 public slots:
  // Returns false (and does nothing) while a run is in progress.
  bool start(const tessera::api::EvalRequest& request) override;
  // Asks the worker to stop at its next check; cancelled() follows unless it had already finished.
  void cancel() override;

 private:
  void finishRun();

  std::shared_ptr<widgets::MetricsStore> store_;
  widgets::WorkerEndpoint endpoint_;
  widgets::WorkerJob* job_ = nullptr;
};

}  // namespace tessera::workbench
