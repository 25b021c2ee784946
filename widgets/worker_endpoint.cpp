#include "worker_endpoint.h"

#include <QCoreApplication>
#include <QFileInfo>
#include <QProcess>

namespace tessera::widgets {

QString defaultLocalProgram() {
  const QString env = qEnvironmentVariable("TESSERA_WORKER");
  if (!env.isEmpty()) return env;
  const QString dir = QCoreApplication::applicationDirPath();
  for (const QString& candidate : {dir + "/tessera", dir + "/../tessera", dir + "/../../app/tessera"}) {
    const QFileInfo info(candidate);
    if (info.isFile() && info.isExecutable()) return info.canonicalFilePath();
  }
  return "tessera";
}

QString WorkerEndpoint::processProgram() const {
  if (kind == Kind::Local) return program.isEmpty() ? defaultLocalProgram() : program;
  const QStringList ssh = QProcess::splitCommand(ssh_command);
  return ssh.isEmpty() ? QString("ssh") : ssh.front();
}

QStringList WorkerEndpoint::processArguments() const {
  if (kind == Kind::Local) return {"worker"};
  QStringList args = QProcess::splitCommand(ssh_command);
  if (!args.isEmpty()) args.removeFirst();
  // -T: no terminal (the protocol is binary-clean JSON lines); BatchMode: fail instead of prompting.
  args.prepend("BatchMode=yes");
  args.prepend("-o");
  args.prepend("-T");
  QString remote = program.isEmpty() ? QString("tessera") : program;
  // The remote shell parses the command line: the path is passed single-quoted, as it is.
  args << "'" + remote.replace("'", "'\\''") + "' worker";
  return args;
}

QString WorkerEndpoint::describe() const {
  if (kind == Kind::Local) return QObject::tr("this machine (%1)").arg(processProgram());
  return QObject::tr("%1 (%2)").arg(ssh_command, program.isEmpty() ? QString("tessera") : program);
}

QJsonObject WorkerEndpoint::toJson() const {
  return {{"kind", kind == Kind::Ssh ? "ssh" : "local"}, {"program", program}, {"ssh_command", ssh_command}};
}

WorkerEndpoint WorkerEndpoint::fromJson(const QJsonObject& json) {
  WorkerEndpoint e;
  e.kind = json.value("kind").toString() == "ssh" ? Kind::Ssh : Kind::Local;
  e.program = json.value("program").toString();
  e.ssh_command = json.value("ssh_command").toString();
  return e;
}

}  // namespace tessera::widgets
