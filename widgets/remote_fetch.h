#pragma once
// Copies a file or a folder from the worker's host to this machine (a "fetch" job): an export
// written on a GPU server, brought back. The bytes go into a temporary sibling of the destination
// (<destination>.tessera-partial-<pid>),
// which is renamed only when every file is complete, so a failed or cancelled copy leaves nothing;
// an existing destination is never overwritten.
#include <QFile>
#include <QObject>
#include <QString>
#include <memory>

#include "worker_endpoint.h"

namespace tessera::widgets {

class WorkerJob;

class RemoteFetch : public QObject {
  Q_OBJECT

 public:
  RemoteFetch(WorkerEndpoint worker, QString remote_path, QString local_path, QObject* parent = nullptr);
  ~RemoteFetch() override;

  void start();  // ends in exactly one of finished(), failed() or cancelled()
  void cancel();

 signals:
  void progress(qint64 done, qint64 total);
  void finished(const QString& local_path, qint64 bytes);
  void failed(const QString& message);
  void cancelled();

 private:
  void write(const QString& file, qint64 offset, const QByteArray& bytes);
  void fail(const QString& message);
  void discardPartial();

  WorkerEndpoint worker_;
  QString remote_, local_, partial_;
  WorkerJob* job_ = nullptr;
  std::unique_ptr<QFile> file_;  // the file being written
  QString file_name_;
  QString error_;
};

}  // namespace tessera::widgets
