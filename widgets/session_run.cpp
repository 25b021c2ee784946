#include "session_run.h"

namespace tessera::widgets {

QString statusName(SessionRun::Status status) {
  switch (status) {
    case SessionRun::Status::Queued:
      return "queued";
    case SessionRun::Status::Running:
      return "running";
    case SessionRun::Status::Paused:
      return "paused";
    case SessionRun::Status::Finished:
      return "finished";
    case SessionRun::Status::Failed:
      return "failed";
    case SessionRun::Status::Cancelled:
      return "cancelled";
  }
  return "failed";
}

SessionRun::Status statusFromName(const QString& name) {
  for (auto s : {SessionRun::Status::Queued, SessionRun::Status::Running, SessionRun::Status::Paused,
                 SessionRun::Status::Finished, SessionRun::Status::Failed, SessionRun::Status::Cancelled})
    if (statusName(s) == name) return s;
  return SessionRun::Status::Failed;
}

QString describeConfig(const pipeline::RunConfig& c) {
  QString text = QString::fromStdString(c.method + " " + c.weight.label());
  if (c.act_bits) text += QString(" A%1").arg(c.act_bits);
  return text;
}

}  // namespace tessera::widgets
