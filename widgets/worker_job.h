#pragma once
// One job run by a `tessera worker` process (docs/worker-protocol.md): the workbench's single way
// of running anything of the core. start() launches the worker where the endpoint says (this
// machine or over SSH), checks its hello, sends the request, and turns the worker's lines into
// signals on the GUI thread. Each job has a process of its own, so a crash, an out-of-memory or a
// dropped connection ends that job only.
//
// Every start() ends in exactly one of succeeded(), failed() or cancelled(). failed() says what
// went wrong in words: the worker's error; or that it could not be started, was not a Tessera
// worker, spoke another protocol version, sent a malformed line, or exited (with the exit status
// or the signal, and the last lines it wrote to stderr). The worker's log lines go to the
// workbench's log (tessera::logger(), hence the log pane), marked "[worker]".
#include <QByteArray>
#include <QObject>
#include <QProcess>
#include <QString>
#include <QStringList>
#include <QTimer>

#include "protocol/worker_protocol.h"
#include "rundir/run_event.h"
#include "worker_endpoint.h"

namespace tessera::widgets {

class WorkerJob : public QObject {
  Q_OBJECT

 public:
  // `type` is a request type ("quantize", "evaluate", ...); `fields` its fields (all but type and job).
  WorkerJob(WorkerEndpoint endpoint, QString type, protocol::Json fields, QObject* parent = nullptr);
  ~WorkerJob() override;  // cancels a running job and ends its process

  void start();
  // For the owner once the job has ended: deletes this object when its process has exited (at
  // once if it has), so that no one waits for a worker's exit on the GUI thread.
  void release();
  bool isRunning() const { return state_ == State::Starting || state_ == State::Running; }
  QString type() const { return type_; }
  const WorkerEndpoint& endpoint() const { return endpoint_; }
  // The worker's process id on its host, from its hello (0 until then).
  qint64 workerPid() const { return worker_pid_; }
  // From the worker's "cancelled": the step-loss events it had sent when the cancel request reached
  // it, and when the job ended ({-1, -1} when unknown, e.g. a worker that had to be killed).
  std::pair<qint64, qint64> cancelStepEvents() const { return cancel_step_events_; }

  // Runs one request to its end in a local event loop and returns its result; throws
  // tessera::Error with failed()'s message (or "cancelled"). For short requests (model info,
  // export formats); `timeout_ms` bounds the wait.
  static protocol::Json runToEnd(const WorkerEndpoint& endpoint, const QString& type, protocol::Json fields,
                                 int timeout_ms = 120000);

 public slots:
  void pause();   // paused() follows when the job waits at its next step
  void resume();  // resumed() follows
  void cancel();  // cancelled() follows; the process is killed if it has not ended within 10 s

 signals:
  void runEvent(const tessera::rundir::RunEvent& event);
  void progress(const QString& stage, qint64 done, qint64 total, double value);
  // A chunk of a fetched file (a "fetch" job): `file` relative to the fetched folder, "" for a file.
  void dataChunk(const QString& file, qint64 offset, const QByteArray& bytes);
  // The job waits at its step. The worker counts the step-loss events it had sent when the pause
  // request reached it and when the job stopped, so the difference is the steps taken after the request.
  void paused(qint64 step_events_at_request, qint64 step_events);
  void resumed();
  void succeeded(const tessera::protocol::Json& result);
  void failed(const QString& message);
  void cancelled();  // cancelStepEvents() then says how far the job went after the request

 private:
  enum class State { Idle, Starting, Running, Ended };
  void readOutput();
  void readErrors();
  void handleLine(const QByteArray& line);
  void handleHello(const QByteArray& line);  // the worker's first line
  void handleMessage(const protocol::Json& message);
  void processFinished(int exit_code, QProcess::ExitStatus status);
  void processError(QProcess::ProcessError error);
  void send(const protocol::Json& message);
  void fail(const QString& message);  // ends the job as failed and stops the process
  void endProcess();
  QString stderrTail() const;

  WorkerEndpoint endpoint_;
  QString type_;
  protocol::Json fields_;
  QProcess* process_ = nullptr;
  State state_ = State::Idle;
  bool cancel_requested_ = false;
  qint64 worker_pid_ = 0;
  std::pair<qint64, qint64> cancel_step_events_{-1, -1};
  QByteArray stdout_buffer_, stderr_buffer_;
  QStringList stderr_lines_;  // the last ones, for failure messages
  QTimer hello_timeout_, cancel_timeout_;
};

}  // namespace tessera::widgets

Q_DECLARE_METATYPE(tessera::rundir::RunEvent)
Q_DECLARE_METATYPE(tessera::protocol::Json)
