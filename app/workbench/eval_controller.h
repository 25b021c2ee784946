#pragma once
// Runs tessera::api::evaluate_perplexity on a worker thread. Whatever the worker reports reaches
// the GUI thread as queued signals; the worker itself touches no QObject but this controller's
// event queue and the (mutex-protected) MetricsStore.
//
// Every start() ends in exactly one of finished(), failed() or cancelled(), emitted on the
// controller's (GUI) thread after the worker has returned, so a slot may start the next run.
#include <QObject>
#include <QString>
#include <memory>

#include "api/model_jobs.h"
#include "api_metatypes.h"
#include "metrics_store.h"
#include "util/stop_token.h"

class QThread;

namespace tessera::workbench {

class EvalController : public QObject {
  Q_OBJECT

 public:
  // Running perplexity is appended to `store` (series PerplexityPlot::kSeries) by the worker; the
  // store is cleared at each start. `store` may be null.
  explicit EvalController(std::shared_ptr<widgets::MetricsStore> store = nullptr,
                          QObject* parent = nullptr);
  ~EvalController() override;  // cancels a running evaluation and waits for it

  bool isRunning() const { return thread_ != nullptr; }

 public slots:
  // Returns false (and does nothing) while a run is in progress.
  bool start(const tessera::api::EvalRequest& request);
  // Asks the worker to stop at its next check; cancelled() follows unless it had already finished.
  void cancel();

 signals:
  void started();
  void progress(const tessera::api::EvalProgress& progress);
  void finished(const tessera::api::EvalReport& report);
  void failed(const QString& message);
  void cancelled();

 private:
  void finishRun();

  std::shared_ptr<widgets::MetricsStore> store_;
  QThread* thread_ = nullptr;
  StopToken stop_;
};

}  // namespace tessera::workbench
