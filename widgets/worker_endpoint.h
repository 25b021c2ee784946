#pragma once
// Where the workbench's jobs run: a `tessera` program on this machine (the one beside the
// workbench by default, or any other build, e.g. a CUDA one), or one on another host reached with
// an ssh command line. Stored in the session and in the settings.
#include <QJsonObject>
#include <QString>
#include <QStringList>

namespace tessera::widgets {

struct WorkerEndpoint {
  enum class Kind { Local, Ssh };
  Kind kind = Kind::Local;
  QString program;      // Local: path of `tessera` ("" = defaultLocalProgram()); Ssh: the remote path ("" = "tessera")
  QString ssh_command;  // Ssh: "ssh [options] [user@]host", e.g. "ssh -p 2222 me@gpu-server"

  // The program and arguments that start `tessera worker` there. Over SSH, BatchMode is added so
  // that a missing key fails at once with a message instead of waiting for a password prompt.
  QString processProgram() const;
  QStringList processArguments() const;
  // "this machine (/opt/tessera/bin/tessera)" or "ssh me@gpu-server (tessera)", for messages.
  QString describe() const;
  bool isRemote() const { return kind == Kind::Ssh; }

  QJsonObject toJson() const;
  static WorkerEndpoint fromJson(const QJsonObject& json);
  bool operator==(const WorkerEndpoint& o) const {
    return kind == o.kind && program == o.program && ssh_command == o.ssh_command;
  }
};

// $TESSERA_WORKER if set; else `tessera` beside the workbench, or in the build tree's app/ folder
// above it; else "tessera" (found on PATH).
QString defaultLocalProgram();

}  // namespace tessera::widgets
