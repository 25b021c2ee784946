// A worker over SSH for real: the test starts Debian's sshd as a process of its own on a free port
// of 127.0.0.1, with a throwaway host key, user key and config in a temporary folder (nothing of the
// system's ssh setup is used or changed), and runs jobs through `ssh -F <config> host tessera worker`.
// A run there gives the local run's perplexity; a refused key and a wrong host key are clear
// errors; a dropped connection fails the run, which then resumes over SSH to the same codes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QMap>
#include <QProcess>
#include <QSignalSpy>
#include <QtTest>
#include <cmath>
#include <csignal>
#include <memory>

#include "export_dialog.h"
#include "gui_test_main.h"
#include "gui_test_runs.h"
#include "run_controller.h"
#include "run_metrics_store.h"
#include "test_data.h"
#include "worker_job.h"

using tessera::widgets::RunMetricsStore;
using tessera::widgets::WorkerEndpoint;
using tessera::widgets::WorkerJob;
using tessera::workbench::RunController;
using tessera::workbench::RunJob;
using tessera::workbench::RunOutcome;

namespace {
constexpr int kRunTimeoutMs = 240000;
const char* kModel = "models/stories260K/stories260K.bin";
const char* kCalib = "text/tinystories/train-sample.txt";
const char* kText = "text/tinystories/sample.txt";

QString sshd_binary() {
  for (const QString& p : {QString("/usr/sbin/sshd"), QString("/sbin/sshd")})
    if (QFileInfo(p).isExecutable()) return p;
  return QString();
}

// Runs a program to its end; its stdout, or a fatal test error.
QByteArray run(const QString& program, const QStringList& args) {
  QProcess p;
  p.start(program, args);
  if (!p.waitForFinished(30000) || p.exitCode() != 0)
    qFatal("%s %s failed: %s", qPrintable(program), qPrintable(args.join(' ')), p.readAllStandardError().constData());
  return p.readAllStandardOutput();
}

void writeFile(const QString& path, const QByteArray& text) {
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly) || f.write(text) != text.size()) qFatal("cannot write %s", qPrintable(path));
}

// Connects to (port = 0: binds) 127.0.0.1:port; returns the bound port, or whether it connected.
int loopback(int port, bool bind_only) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  int result = 0;
  if (bind_only) {
    socklen_t len = sizeof(a);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      result = ntohs(a.sin_port);
  } else {
    result = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ::close(fd);
  return result;
}

// The sshd processes below the listening daemon `root`: the server side of every open session.
QList<pid_t> sshdSessionsOf(qint64 root) {
  QMap<qint64, QList<qint64>> children;
  QMap<qint64, QByteArray> comm;
  for (const QString& entry : QDir("/proc").entryList(QDir::Dirs)) {
    bool numeric = false;
    const qint64 pid = entry.toLongLong(&numeric);
    if (!numeric) continue;
    QFile stat("/proc/" + entry + "/stat");
    if (!stat.open(QIODevice::ReadOnly)) continue;
    const QByteArray text = stat.readAll();
    // "pid (comm) state ppid ...": comm may hold spaces, so the fields are read after the last ')'.
    const int open = text.indexOf('('), close = text.lastIndexOf(')');
    const QList<QByteArray> fields = text.mid(close + 2).split(' ');
    if (fields.size() < 2) continue;
    comm[pid] = text.mid(open + 1, close - open - 1);
    children[fields[1].toLongLong()] << pid;
  }
  QList<pid_t> sessions;
  QList<qint64> todo = children.value(root);
  while (!todo.isEmpty()) {
    const qint64 pid = todo.takeFirst();
    if (comm.value(pid).startsWith("sshd")) sessions << static_cast<pid_t>(pid);
    todo << children.value(pid);
  }
  return sessions;
}

QByteArray fileBytes(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}
}  // namespace

class TestGuiSshWorker : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void initTestCase();
  void cleanupTestCase();
  void runOverSshMatchesLocalRun();
  void refusedKeyAndWrongHostKeyAreClearErrors();
  void droppedConnectionFailsAndResumesOverSsh();

 private:
  WorkerEndpoint endpoint(const QString& config) const;
  QString dir_;
  QProcess sshd_;
  int port_ = 0;
};

void TestGuiSshWorker::initTestCase() {
  tessera_test::use_fresh_settings("Tessera SSH Worker Test");
  const QString sshd = sshd_binary();
  if (sshd.isEmpty()) QFAIL("sshd is not installed: installers/install-deps-debian.sh installs openssh-server");
  dir_ = QString::fromStdString(tessera_test::fresh_temp_dir("gui-ssh"));
  for (const char* key : {"host_key", "user_key", "stranger_key", "other_host_key"})
    run("ssh-keygen", {"-q", "-t", "ed25519", "-N", "", "-C", key, "-f", dir_ + "/" + key});
  QFile::copy(dir_ + "/user_key.pub", dir_ + "/authorized_keys");
  port_ = loopback(0, /*bind_only=*/true);  // a free port (sshd binds it a moment later)
  const QString user = qEnvironmentVariable("USER", QString::fromLocal8Bit(qgetenv("LOGNAME")));
  writeFile(dir_ + "/sshd_config",
            QString("Port %1\nListenAddress 127.0.0.1\nHostKey %2/host_key\nAuthorizedKeysFile %2/authorized_keys\n"
                    "PidFile %2/sshd.pid\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "UsePAM no\nPermitRootLogin prohibit-password\nX11Forwarding no\nAllowTcpForwarding no\n"
                    "LogLevel VERBOSE\n")
                .arg(port_)
                .arg(dir_)
                .toUtf8());
  // As root, sshd needs its privilege-separation folder (normally made by the service's start).
  if (::geteuid() == 0) QDir().mkpath("/run/sshd");
  const QByteArray host_pub = fileBytes(dir_ + "/host_key.pub").trimmed();
  const QByteArray other_pub = fileBytes(dir_ + "/other_host_key.pub").trimmed();
  writeFile(dir_ + "/known_hosts", QString("[127.0.0.1]:%1 ").arg(port_).toUtf8() + host_pub + "\n");
  writeFile(dir_ + "/wrong_known_hosts", QString("[127.0.0.1]:%1 ").arg(port_).toUtf8() + other_pub + "\n");
  auto client = [&](const QString& name, const QString& key, const QString& known_hosts) {
    writeFile(dir_ + "/" + name,
              QString("Host gpu-server\n  HostName 127.0.0.1\n  Port %1\n  IdentityFile %2/%3\n  IdentitiesOnly yes\n"
                      "  UserKnownHostsFile %2/%4\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
                      "  ConnectTimeout 10\n  ServerAliveInterval 2\n  ServerAliveCountMax 3\n%5")
                  .arg(port_)
                  .arg(dir_, key, known_hosts)
                  .arg(user.isEmpty() ? QString() : "  User " + user + "\n")
                  .toUtf8());
  };
  client("ssh_config", "user_key", "known_hosts");
  client("ssh_config_stranger", "stranger_key", "known_hosts");
  client("ssh_config_wrong_host", "user_key", "wrong_known_hosts");

  sshd_.setProcessChannelMode(QProcess::MergedChannels);
  sshd_.start(sshd, {"-D", "-e", "-f", dir_ + "/sshd_config"});
  QVERIFY(sshd_.waitForStarted());
  // Listening once a connection is accepted.
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = loopback(port_, /*bind_only=*/false);
    if (!up) QTest::qWait(100);
  }
  QVERIFY2(up, sshd_.readAll().constData());
}

void TestGuiSshWorker::cleanupTestCase() {
  if (sshd_.state() != QProcess::NotRunning) {
    sshd_.terminate();
    sshd_.waitForFinished(5000);
  }
}

WorkerEndpoint TestGuiSshWorker::endpoint(const QString& config) const {
  WorkerEndpoint e;
  e.kind = WorkerEndpoint::Kind::Ssh;
  e.ssh_command = QString("ssh -F %1/%2 gpu-server").arg(dir_, config);
  // On the "remote" host (this machine) the same build; its path has no spaces here.
  e.program = QString::fromStdString(tessera_test::cli_binary());
  return e;
}

void TestGuiSshWorker::runOverSshMatchesLocalRun() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  TESSERA_REQUIRE_DATA(text, kText);
  // The devices, as the Worker box asks for them.
  const auto devices = tessera::protocol::devices_from_json(
      WorkerJob::runToEnd(endpoint("ssh_config"), "devices", tessera::protocol::Json::object()));
  QCOMPARE(devices.front().id, std::string("cpu"));

  auto store = std::make_shared<RunMetricsStore>();
  RunController controller(store);
  QSignalSpy finished(&controller, &RunController::finished);
  QSignalSpy failed(&controller, &RunController::failed);
  RunJob job;
  job.config = tessera_test::ci_run(model, calib, "awq", 2, 60);
  job.eval_text = QString::fromStdString(text);
  job.run_id = 1;
  job.run_dir = dir_ + "/local";
  QVERIFY(controller.start(job));
  QVERIFY(finished.wait(kRunTimeoutMs) || !failed.isEmpty());
  QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
  const auto local = finished.takeFirst().at(0).value<RunOutcome>();

  controller.setWorker(endpoint("ssh_config"));
  job.run_id = 2;
  job.run_dir = dir_ + "/remote";
  QVERIFY(controller.start(job));
  QVERIFY(finished.wait(kRunTimeoutMs) || !failed.isEmpty());
  QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
  const auto remote = finished.takeFirst().at(0).value<RunOutcome>();
  // The local worker leaves a core to the GUI, the one over SSH uses every core: another float
  // summation order in the matmuls, so agreement to rounding, not to the bit.
  const double relative = std::abs(remote.perplexity - local.perplexity) / local.perplexity;
  qInfo("AWQ W2 g32 perplexity: local worker %.9f, worker over ssh %.9f (relative difference %.1e)", local.perplexity,
        remote.perplexity, relative);
  QVERIFY(relative < 1e-6);
  QCOMPARE(store->trace(2).blocks.size(), std::size_t(5));
  QCOMPARE(store->trace(2).layers.size(), std::size_t(5 * 7));
  QVERIFY(!store->trace(2).memory.empty());

  // Its GPTQ export, written on the "server" and copied back through the worker.
  tessera::widgets::ExportDialog dialog({{2, "awq W2 g32 #2", remote.run_dir}}, 2, endpoint("ssh_config"));
  QVERIFY2(dialog.isFormatAvailable("gptq"), qPrintable(dialog.formatReason("gptq")));
  QVERIFY(dialog.selectFormat("gptq"));
  dialog.setOutputPath(dir_ + "/remote-gptq");
  dialog.setCopyBack(dir_ + "/copied-gptq");
  QSignalSpy copied(&dialog, &tessera::widgets::ExportDialog::copiedBack);
  QSignalSpy copy_failed(&dialog, &tessera::widgets::ExportDialog::copyFailed);
  QSignalSpy export_failed(&dialog, &tessera::widgets::ExportDialog::exportFailed);
  QVERIFY(dialog.startExport());
  QTRY_VERIFY_WITH_TIMEOUT(!copied.isEmpty() || !copy_failed.isEmpty() || !export_failed.isEmpty(), kRunTimeoutMs);
  QVERIFY2(copy_failed.isEmpty() && export_failed.isEmpty(), qPrintable(dialog.resultText()));
  const QStringList files = QDir(dir_ + "/remote-gptq").entryList(QDir::Files);
  QVERIFY(files.contains("model.safetensors") && files.contains("quantize_config.json"));
  QCOMPARE(QDir(dir_ + "/copied-gptq").entryList(QDir::Files), files);
  for (const QString& f : files)
    QVERIFY2(fileBytes(dir_ + "/copied-gptq/" + f) == fileBytes(dir_ + "/remote-gptq/" + f), qPrintable(f));
  QVERIFY(dialog.resultText().contains("Copied to " + dir_ + "/copied-gptq"));
  // An existing destination is never overwritten.
  dialog.setOutputPath(dir_ + "/remote-gptq-2");
  dialog.setCopyBack(dir_ + "/copied-gptq");
  QVERIFY(dialog.startExport());
  QTRY_VERIFY_WITH_TIMEOUT(!copy_failed.isEmpty() || copied.size() > 1, kRunTimeoutMs);
  QVERIFY2(copy_failed.size() == 1 && copy_failed.first().at(0).toString().contains("already exists"),
           qPrintable(dialog.resultText()));
}

void TestGuiSshWorker::refusedKeyAndWrongHostKeyAreClearErrors() {
  QString message;
  try {
    WorkerJob::runToEnd(endpoint("ssh_config_stranger"), "devices", tessera::protocol::Json::object(), 30000);
  } catch (const std::exception& e) {
    message = QString::fromUtf8(e.what());
  }
  QVERIFY2(message.contains("ssh exit status 255") && message.contains("Permission denied"), qPrintable(message));
  message.clear();
  try {
    WorkerJob::runToEnd(endpoint("ssh_config_wrong_host"), "devices", tessera::protocol::Json::object(), 30000);
  } catch (const std::exception& e) {
    message = QString::fromUtf8(e.what());
  }
  QVERIFY2(message.contains("Host key verification failed"), qPrintable(message));
}

void TestGuiSshWorker::droppedConnectionFailsAndResumesOverSsh() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  auto store = std::make_shared<RunMetricsStore>();
  RunController controller(store);
  controller.setWorker(endpoint("ssh_config"));
  QSignalSpy finished(&controller, &RunController::finished);
  QSignalSpy failed(&controller, &RunController::failed);
  RunJob job;
  job.config = tessera_test::ci_run(model, calib, "tesseraq", 2, 60);
  job.run_id = 1;
  job.run_dir = dir_ + "/uninterrupted";
  QVERIFY(controller.start(job));
  QVERIFY(finished.wait(kRunTimeoutMs) || !failed.isEmpty());
  QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
  const auto reference = finished.takeFirst().at(0).value<RunOutcome>();

  job.run_id = 2;
  job.run_dir = dir_ + "/dropped";
  QVERIFY(controller.start(job));
  QTRY_VERIFY_WITH_TIMEOUT(store->trace(2).blocks.size() >= 2, kRunTimeoutMs);
  // The connection drops: the server side of every session goes away.
  const auto sessions = sshdSessionsOf(sshd_.processId());
  QVERIFY(!sessions.isEmpty());
  for (pid_t pid : sessions) ::kill(pid, SIGKILL);
  QVERIFY(failed.wait(30000));
  const QString message = failed.takeFirst().at(1).toString();
  qInfo("dropped connection: %s", qPrintable(message));
  QVERIFY2(message.contains("SSH connection") || message.contains("killed by signal"), qPrintable(message));
  // The remote worker sees its input close, cancels, and releases the run directory's lock.
  QTRY_VERIFY_WITH_TIMEOUT(
      [&] {
        QProcess flock;
        flock.start("flock", {"-n", "-s", job.run_dir + "/run.lock", "true"});
        return flock.waitForFinished(5000) && flock.exitCode() == 0;
      }(),
      30000);

  job.resume = true;
  QVERIFY(controller.start(job));
  QVERIFY(finished.wait(kRunTimeoutMs) || !failed.isEmpty());
  QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
  const auto resumed = finished.takeFirst().at(0).value<RunOutcome>();
  const QString differing = tessera_test::differing_block_file(reference.run_dir, resumed.run_dir, 5);
  QVERIFY2(differing.isEmpty(), qPrintable("codes differ in " + differing));
}

TESSERA_GUI_TEST_MAIN(TestGuiSshWorker, runOverSshMatchesLocalRun, refusedKeyAndWrongHostKeyAreClearErrors,
                      droppedConnectionFailsAndResumesOverSsh)
#include "test_gui_ssh_worker.moc"
