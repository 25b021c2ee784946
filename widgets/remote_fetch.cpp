#include "remote_fetch.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>

#include "protocol/worker_protocol.h"
#include "worker_job.h"

namespace tessera::widgets {

RemoteFetch::RemoteFetch(WorkerEndpoint worker, QString remote_path, QString local_path, QObject* parent)
    : QObject(parent), worker_(std::move(worker)), remote_(std::move(remote_path)), local_(std::move(local_path)) {
  // A name of this process's own: never a file or folder of the user's.
  partial_ = local_ + QString(".tessera-partial-%1").arg(QCoreApplication::applicationPid());
}

RemoteFetch::~RemoteFetch() {
  if (job_) discardPartial();  // still copying: nothing half-written stays
}

void RemoteFetch::start() {
  if (QFileInfo::exists(local_)) {
    emit failed(tr("%1 already exists: choose another place to copy the export to").arg(local_));
    return;
  }
  job_ = new WorkerJob(worker_, "fetch", {{"path", remote_.toStdString()}}, this);
  connect(job_, &WorkerJob::dataChunk, this, &RemoteFetch::write);
  connect(job_, &WorkerJob::progress, this,
          [this](const QString&, qint64 done, qint64 total, double) { emit progress(done, total); });
  connect(job_, &WorkerJob::succeeded, this, [this](const protocol::Json& result) {
    job_->release();
    job_ = nullptr;
    file_.reset();  // closes the last file
    if (!error_.isEmpty()) return fail(error_);
    // A fetched file is partial_ itself; a folder's files are below it (also an empty folder's).
    if (!QFileInfo::exists(partial_)) QDir().mkpath(partial_);
    if (!QFile::rename(partial_, local_) && !QDir().rename(partial_, local_))
      return fail(tr("cannot move the copy to %1").arg(local_));
    emit finished(local_, result.value("bytes", qint64{0}));
  });
  connect(job_, &WorkerJob::failed, this, [this](const QString& message) {
    job_->release();
    job_ = nullptr;
    fail(message);
  });
  connect(job_, &WorkerJob::cancelled, this, [this] {
    job_->release();
    job_ = nullptr;
    if (!error_.isEmpty()) return fail(error_);  // stopped because a write failed
    discardPartial();
    emit cancelled();
  });
  job_->start();
}

void RemoteFetch::cancel() {
  if (job_) job_->cancel();
}

void RemoteFetch::write(const QString& file, qint64 offset, const QByteArray& bytes) {
  if (!error_.isEmpty()) return;
  if (file.startsWith('/') || file.split('/').contains("..")) {
    error_ = tr("the worker sent a file outside the copied folder: %1").arg(file);
    if (job_) job_->cancel();
    return;
  }
  const QString path = file.isEmpty() ? partial_ : partial_ + "/" + file;
  if (!file_ || file_name_ != path) {
    if (!file.isEmpty() && !QDir().mkpath(QFileInfo(path).absolutePath())) {
      error_ = tr("cannot create the folder of %1").arg(path);
      return;
    }
    file_ = std::make_unique<QFile>(path);
    file_name_ = path;
    if (!file_->open(QIODevice::WriteOnly)) {
      error_ = tr("cannot write %1: %2").arg(path, file_->errorString());
      return;
    }
  }
  if (!file_->seek(offset) || file_->write(bytes) != bytes.size()) {
    error_ = tr("cannot write %1 (disk full?): %2").arg(path, file_->errorString());
    if (job_) job_->cancel();  // no use fetching the rest
  }
}

void RemoteFetch::fail(const QString& message) {
  file_.reset();
  discardPartial();
  emit failed(message);
}

void RemoteFetch::discardPartial() {
  file_.reset();
  const QFileInfo info(partial_);
  if (info.isDir())
    QDir(partial_).removeRecursively();
  else if (info.exists())
    QFile::remove(partial_);
}

}  // namespace tessera::widgets
