#include "rundir/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "util/error.h"

namespace fs = std::filesystem;

namespace tessera::rundir {

std::string RunDirectory::block_path(std::int64_t block) const {
  char name[64];
  std::snprintf(name, sizeof(name), "/blocks/block_%03lld.safetensors",  // NOLINT(cert-err33-c): cannot truncate
                static_cast<long long>(block));
  return path_ + name;
}

std::string RunDirectory::stats_path(std::int64_t block) const {
  char name[64];
  std::snprintf(name, sizeof(name), "/stats/block_%03lld.json",  // NOLINT(cert-err33-c): cannot truncate
                static_cast<long long>(block));
  return path_ + name;
}

bool RunDirectory::has_manifest() const { return fs::exists(manifest_path()); }
bool RunDirectory::has_events() const { return fs::exists(events_path()); }
bool RunDirectory::has_block(std::int64_t block) const { return fs::exists(block_path(block)); }
bool RunDirectory::has_finished_block(std::int64_t block) const {
  return has_block(block) && fs::exists(stats_path(block));
}

void RunDirectory::create() const {
  std::error_code ec;
  fs::create_directories(path_ + "/blocks", ec);
  if (!ec) fs::create_directories(path_ + "/stats", ec);
  if (ec) throw Error("cannot create run directory " + path_ + ": " + ec.message());
}

RunDirectoryLock::RunDirectoryLock(const RunDirectory& dir) {
  const std::string path = dir.lock_path();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot create " + path + ": " + std::strerror(errno));
  // A follower probes the lock with a brief shared lock (is_held); a few retries keep that
  // moment from being taken for another writer.
  int rc = -1;
  for (int attempt = 0; attempt < 20 && rc != 0; ++attempt) {
    rc = ::flock(fd_, LOCK_EX | LOCK_NB);
    if (rc != 0 && errno != EWOULDBLOCK) {
      const std::string why = std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
      throw Error("cannot lock " + path + ": " + why);
    }
    if (rc != 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (rc != 0) {
    char holder[32] = {0};
    const ssize_t n = ::pread(fd_, holder, sizeof(holder) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string pid = n > 0 ? std::string(holder, static_cast<std::size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    throw Error(dir.path() + " is being written by another process" + (pid.empty() ? "" : " (pid " + pid + ")") +
                "; wait for it to finish or stop it before resuming this run");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The pid is only shown to whoever finds the run locked; the lock itself holds.
  }
}

bool RunDirectoryLock::is_held(const RunDirectory& dir) {
  const std::string path = dir.lock_path();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the shared lock if it was granted
  return held;
}

RunDirectoryLock::~RunDirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

}  // namespace tessera::rundir
