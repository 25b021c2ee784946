#include "worker_job.h"

#include <QEventLoop>
#include <QPointer>
#include <QThread>
#include <algorithm>
#include <csignal>
#include <cstring>

#include "util/error.h"
#include "util/log.h"

namespace tessera::widgets {

namespace {
constexpr int kJobId = 1;               // one job per worker process
constexpr int kHelloTimeoutMs = 30000;  // an SSH login can take seconds; a silent program never answers
constexpr int kCancelTimeoutMs = 10000;
constexpr int kStderrLinesKept = 8;
}  // namespace

WorkerJob::WorkerJob(WorkerEndpoint endpoint, QString type, protocol::Json fields, QObject* parent)
    : QObject(parent), endpoint_(std::move(endpoint)), type_(std::move(type)), fields_(std::move(fields)) {
  qRegisterMetaType<rundir::RunEvent>();
  qRegisterMetaType<protocol::Json>();
  hello_timeout_.setSingleShot(true);
  cancel_timeout_.setSingleShot(true);
  connect(&hello_timeout_, &QTimer::timeout, this, [this] {
    fail(tr("%1 did not answer within %2 s: it is not a Tessera worker, or it is stuck (e.g. an ssh "
            "prompt)")
             .arg(endpoint_.describe())
             .arg(kHelloTimeoutMs / 1000));
  });
  connect(&cancel_timeout_, &QTimer::timeout, this, [this] {
    if (process_) process_->kill();  // processFinished() then reports cancelled()
  });
}

WorkerJob::~WorkerJob() {
  if (!process_) return;
  process_->disconnect(this);
  if (process_->state() != QProcess::NotRunning) {
    // The worker cancels its job when its input closes; kill it if it does not end soon.
    process_->closeWriteChannel();
    if (!process_->waitForFinished(3000)) {
      process_->kill();
      process_->waitForFinished(1000);
    }
  }
}

void WorkerJob::release() {
  setParent(nullptr);  // the owner may go now: deleting it must not wait for this worker's exit
  if (!process_ || process_->state() == QProcess::NotRunning) {
    deleteLater();
    return;
  }
  connect(process_, &QProcess::finished, this, &QObject::deleteLater);
  endProcess();  // closes its input; killed if it has not exited within the grace period
}

void WorkerJob::start() {
  if (state_ != State::Idle) return;
  state_ = State::Starting;
  if (endpoint_.isRemote() && endpoint_.ssh_command.trimmed().isEmpty()) {
    QTimer::singleShot(0, this, [this] {
      fail(tr("No ssh command is set: enter one in the Worker box, e.g. \"ssh me@gpu-server\"."));
    });
    return;
  }
  process_ = new QProcess(this);
  process_->setProgram(endpoint_.processProgram());
  process_->setArguments(endpoint_.processArguments());
  if (!endpoint_.isRemote() && !qEnvironmentVariableIsSet("TESSERA_THREADS")) {
    // A worker on this machine leaves one core to the GUI thread, so that the plots keep drawing.
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("TESSERA_THREADS", QString::number(std::max(1, QThread::idealThreadCount() - 1)));
    process_->setProcessEnvironment(env);
  }
  connect(process_, &QProcess::readyReadStandardOutput, this, &WorkerJob::readOutput);
  connect(process_, &QProcess::readyReadStandardError, this, &WorkerJob::readErrors);
  connect(process_, &QProcess::finished, this, &WorkerJob::processFinished);
  connect(process_, &QProcess::errorOccurred, this, &WorkerJob::processError);
  hello_timeout_.start(kHelloTimeoutMs);
  process_->start();
  // Written now, read by the worker once it runs; it answers a version mismatch with an error.
  send(protocol::hello_message("client"));
  protocol::Json request = fields_;
  request["type"] = type_.toStdString();
  request["job"] = kJobId;
  send(request);
}

void WorkerJob::send(const protocol::Json& message) {
  if (!process_) return;  // QProcess buffers what is written before the program runs
  const std::string text = message.dump(-1, ' ', false, protocol::Json::error_handler_t::replace) + "\n";
  process_->write(text.data(), static_cast<qint64>(text.size()));
}

void WorkerJob::pause() {
  if (state_ == State::Running || state_ == State::Starting) send(protocol::job_message("pause", kJobId));
}

void WorkerJob::resume() {
  if (state_ == State::Running || state_ == State::Starting) send(protocol::job_message("resume", kJobId));
}

void WorkerJob::cancel() {
  if (!isRunning() || cancel_requested_) return;
  cancel_requested_ = true;
  send(protocol::job_message("cancel", kJobId));
  cancel_timeout_.start(kCancelTimeoutMs);
}

void WorkerJob::readOutput() {
  stdout_buffer_ += process_->readAllStandardOutput();
  // A slot of ours may delete this job (through a nested event loop, e.g. WorkerJob::runToEnd)
  // while its signal is being emitted: nothing of it is touched after that.
  const QPointer<WorkerJob> alive(this);
  int start = 0, end;
  while (isRunning() && (end = stdout_buffer_.indexOf('\n', start)) >= 0) {
    const QByteArray line = stdout_buffer_.mid(start, end - start);
    start = end + 1;
    if (!line.trimmed().isEmpty()) handleLine(line);
    if (!alive) return;
  }
  stdout_buffer_.remove(0, start);
}

void WorkerJob::readErrors() {
  stderr_buffer_ += process_->readAllStandardError();
  int end;
  while ((end = stderr_buffer_.indexOf('\n')) >= 0) {
    const QString line = QString::fromUtf8(stderr_buffer_.left(end)).trimmed();
    stderr_buffer_.remove(0, end + 1);
    if (line.isEmpty()) continue;
    stderr_lines_ << line;
    while (stderr_lines_.size() > kStderrLinesKept) stderr_lines_.removeFirst();
  }
}

QString WorkerJob::stderrTail() const {
  QStringList lines = stderr_lines_;
  if (!stderr_buffer_.trimmed().isEmpty()) lines << QString::fromUtf8(stderr_buffer_).trimmed();
  if (lines.isEmpty()) return QString();
  return tr("\nIts last lines on stderr:\n%1").arg(lines.join("\n"));
}

void WorkerJob::handleLine(const QByteArray& line) {
  if (state_ == State::Starting) {
    handleHello(line);
    return;
  }
  try {
    handleMessage(protocol::parse_line(line.toStdString()));
  } catch (const std::exception& e) {
    readErrors();
    fail(tr("%1 broke the worker protocol: %2").arg(endpoint_.describe(), QString::fromUtf8(e.what())) + stderrTail());
  }
}

void WorkerJob::handleHello(const QByteArray& line) {
  protocol::Json message;
  try {
    message = protocol::parse_line(line.toStdString());
  } catch (const std::exception&) {
    readErrors();
    fail(tr("%1 is not a Tessera worker: its first line is \"%2\"")
             .arg(endpoint_.describe(), QString::fromUtf8(line.left(120))) +
         stderrTail());
    return;
  }
  try {
    protocol::check_hello(message, endpoint_.describe().toStdString());  // names both versions on a mismatch
    if (message.value("role", std::string()) != "worker")
      throw protocol::ProtocolError(endpoint_.describe().toStdString() +
                                    " is not a Tessera worker: its hello is not a worker's");
  } catch (const std::exception& e) {
    fail(QString::fromUtf8(e.what()));
    return;
  }
  hello_timeout_.stop();
  worker_pid_ = message.value("pid", qint64{0});
  state_ = State::Running;
}

void WorkerJob::handleMessage(const protocol::Json& m) {
  const std::string type = m["type"];
  if (type == "event") {
    const protocol::Json& event = protocol::field<protocol::Json>(m, "event");
    // A kind of a later minor version is skipped, as the protocol's versioning promises.
    if (rundir::is_known_run_event_kind(event.value("kind", std::string())))
      emit runEvent(rundir::run_event_from_json(event));
  } else if (type == "progress") {
    emit progress(QString::fromStdString(m.value("stage", std::string())), m.value("done", qint64{0}),
                  m.value("total", qint64{0}), m.value("value", 0.0));
  } else if (type == "data") {
    emit dataChunk(QString::fromStdString(protocol::field<std::string>(m, "file")),
                   protocol::field<qint64>(m, "offset"),
                   QByteArray::fromBase64(QByteArray::fromStdString(protocol::field<std::string>(m, "data"))));
  } else if (type == "paused") {
    emit paused(m.value("step_events_at_request", qint64{-1}), m.value("step_events", qint64{-1}));
  } else if (type == "resumed") {
    emit resumed();
  } else if (type == "log") {
    // Into the workbench's log (its pane), marked as the worker's.
    const std::string level = m.value("level", std::string("info")), text = m.value("message", std::string());
    const auto lvl = spdlog::level::from_str(level);
    tessera::logger()->log(lvl == spdlog::level::off ? spdlog::level::info : lvl, "[worker] {}", text);
  } else if (type == "result") {
    const protocol::Json result = protocol::field<protocol::Json>(m, "result");
    state_ = State::Ended;
    cancel_timeout_.stop();
    endProcess();
    emit succeeded(result);  // last: a slot may delete this job
  } else if (type == "cancelled") {
    cancel_step_events_ = {m.value("step_events_at_request", qint64{-1}), m.value("step_events", qint64{-1})};
    state_ = State::Ended;
    cancel_timeout_.stop();
    endProcess();
    emit cancelled();  // last: a slot may delete this job
  } else if (type == "error") {
    fail(QString::fromStdString(protocol::field<std::string>(m, "message")));
  }
  // "started" and message types of later minor versions need nothing here.
}

void WorkerJob::processFinished(int exit_code, QProcess::ExitStatus status) {
  hello_timeout_.stop();
  cancel_timeout_.stop();
  const QPointer<WorkerJob> alive(this);
  readOutput();  // lines still buffered (a result written just before exiting)
  if (!alive) return;
  readErrors();
  if (state_ == State::Ended) return;
  if (cancel_requested_) {
    state_ = State::Ended;
    emit cancelled();
    return;
  }
  QString what;
  if (status == QProcess::CrashExit) {
    const char* name = exit_code > 0 ? ::strsignal(exit_code) : nullptr;
    what = tr("was killed by signal %1%2").arg(exit_code).arg(name ? QString(" (%1)").arg(name) : QString());
  } else if (endpoint_.isRemote() && exit_code == 255) {
    what = tr("lost its SSH connection, or ssh could not connect (ssh exit status 255)");
  } else {
    what = tr("exited with status %1").arg(exit_code);
  }
  fail(tr("The worker at %1 %2 before the job ended.").arg(endpoint_.describe(), what) + stderrTail());
}

void WorkerJob::processError(QProcess::ProcessError error) {
  if (error != QProcess::FailedToStart) return;  // crashes arrive through processFinished()
  fail(tr("Cannot start the worker %1: %2. Check the worker program in the Worker settings.")
           .arg(endpoint_.describe(), process_->errorString()));
}

void WorkerJob::fail(const QString& message) {
  if (state_ == State::Ended) return;
  state_ = State::Ended;
  hello_timeout_.stop();
  cancel_timeout_.stop();
  if (process_ && process_->state() != QProcess::NotRunning) process_->kill();
  emit failed(message);
}

void WorkerJob::endProcess() {
  // The worker exits when its input closes; one that does not is ended after a grace period.
  process_->closeWriteChannel();
  QTimer::singleShot(5000, this, [this] {
    if (process_ && process_->state() != QProcess::NotRunning) process_->kill();
  });
}

protocol::Json WorkerJob::runToEnd(const WorkerEndpoint& endpoint, const QString& type, protocol::Json fields,
                                   int timeout_ms) {
  WorkerJob job(endpoint, type, std::move(fields));
  QEventLoop loop;
  protocol::Json result;
  QString error;
  bool done = false;
  auto end = [&](const QString& message) {
    error = message;
    done = true;
    loop.quit();
  };
  connect(&job, &WorkerJob::succeeded, &loop, [&](const protocol::Json& r) {
    result = r;
    end(QString());
  });
  connect(&job, &WorkerJob::failed, &loop, [&](const QString& message) { end(message); });
  connect(&job, &WorkerJob::cancelled, &loop, [&] { end(tr("cancelled")); });
  QTimer::singleShot(timeout_ms, &loop, [&] {
    end(tr("%1 did not answer the %2 request within %3 s").arg(endpoint.describe(), type).arg(timeout_ms / 1000));
  });
  job.start();
  // Only the worker's and the timers' events meanwhile: no click can close the window that waits.
  if (!done) loop.exec(QEventLoop::ExcludeUserInputEvents);
  if (!done) throw Error("the application is quitting");
  if (!error.isEmpty()) throw Error(error.toStdString());
  return result;
}

}  // namespace tessera::widgets
