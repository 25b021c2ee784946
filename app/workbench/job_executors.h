#pragma once
// What the RunQueue runs its jobs with: a quantization run executor and an evaluation executor.
// In the workbench they are the RunController and the EvalController (worker processes); in the
// run queue's tests they are stubs that end jobs on demand (as QGIS tests its task manager with
// stub tasks). Every start() that returns true ends in exactly one of finished(), failed() or
// cancelled().
#include <QMetaType>
#include <QObject>
#include <QString>

#include "api_metatypes.h"
#include "pipeline/run_config.h"

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

class RunExecutor : public QObject {
  Q_OBJECT

 public:
  using QObject::QObject;
  virtual bool start(const RunJob& job) = 0;  // false while a job is running
  virtual void pause() = 0;
  virtual void resume() = 0;
  virtual void cancel() = 0;
  virtual bool isRunning() const = 0;
  virtual bool isPaused() const = 0;
  virtual int currentRunId() const = 0;

 signals:
  void started(int run_id);
  void paused(int run_id);
  void resumed(int run_id);
  void finished(const tessera::workbench::RunOutcome& outcome);
  void failed(int run_id, const QString& message);
  void cancelled(int run_id);
};

class EvalExecutor : public QObject {
  Q_OBJECT

 public:
  using QObject::QObject;
  virtual bool start(const api::EvalRequest& request) = 0;  // false while one is running
  virtual void cancel() = 0;
  virtual bool isRunning() const = 0;

 signals:
  void started();
  void progress(const tessera::api::EvalProgress& progress);
  void finished(const tessera::api::EvalReport& report);
  void failed(const QString& message);
  void cancelled();
};

}  // namespace tessera::workbench

Q_DECLARE_METATYPE(tessera::workbench::RunJob)
Q_DECLARE_METATYPE(tessera::workbench::RunOutcome)
