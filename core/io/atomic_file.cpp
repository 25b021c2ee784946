#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "util/error.h"

namespace fs = std::filesystem;

namespace tessera::io {
namespace {

std::string temporary_sibling(const std::string& path) {
  std::random_device rd;
  return path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000);
}

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return;  // best effort for directories on file systems that refuse it
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && !directory) throw Error("cannot flush " + path + " to disk: " + std::strerror(err));
}

std::string parent_of(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Neither writer creates folders above its destination: a typo in the parent path is an error,
// not a new directory tree.
void require_parent_folder(const std::string& path) {
  const std::string parent = parent_of(path);
  std::error_code ec;
  if (!fs::is_directory(parent, ec))
    throw Error("cannot create " + path + ": " + parent +
                (fs::exists(parent, ec) ? " is not a folder" : " does not exist"));
}

// Temporaries of `path` that a killed writer left (PATH.tmp-PID-N, with ".old" for a replaced
// folder) are removed once their process is gone, so that kill -9 never leaves a full-size copy
// behind for good. A live process (kill(pid, 0) succeeds or is not permitted) keeps its own.
void remove_stale_temporaries(const std::string& path) {
  const fs::path p(path);
  const std::string prefix = p.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent_of(path), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos || dash == 0 || rest.find_first_not_of("0123456789") != dash) continue;
    const long pid = std::strtol(rest.substr(0, dash).c_str(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;
    fs::remove_all(entry.path(), ignored);
  }
}

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write,
                           const std::function<void(const std::string& tmp_path)>& check) {
  require_parent_folder(path);
  remove_stale_temporaries(path);
  const std::string tmp = temporary_sibling(path);
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw Error("cannot create " + tmp + ": " + std::strerror(errno));
      write(out);
      out.flush();
      if (!out) throw Error("writing " + path + " failed (disk full?): " + std::strerror(errno));
      out.close();
      if (out.fail()) throw Error("closing " + path + " failed (disk full?)");
    }
    fsync_path(tmp, false);
    if (check) check(tmp);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw Error("cannot rename " + tmp + " to " + path + ": " + ec.message());
    fsync_path(parent_of(path), true);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_folder_atomically(const std::string& path, bool replace,
                             const std::function<void(const std::string& tmp_dir)>& fill) {
  std::error_code ec;
  if (fs::exists(path, ec) && !replace)
    throw Error(path + " already exists; choose another output path or remove it first");
  require_parent_folder(path);
  remove_stale_temporaries(path);
  const std::string tmp = temporary_sibling(path);
  try {
    fs::create_directory(tmp, ec);
    if (ec) throw Error("cannot create folder " + tmp + ": " + ec.message());
    fill(tmp);
    for (const auto& entry : fs::directory_iterator(tmp)) fsync_path(entry.path().string(), false);
    if (fs::exists(path) && ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE) == 0) {
      // One atomic swap: the destination is the old folder or the new one at every instant.
      fs::remove_all(tmp, ec);
    } else if (fs::exists(path)) {
      // No RENAME_EXCHANGE on this file system: move the old folder aside first, so that the
      // destination is never half old, half new (a kill between the renames leaves it absent).
      const std::string old = temporary_sibling(path) + ".old";
      fs::rename(path, old, ec);
      if (ec) throw Error("cannot replace " + path + ": " + ec.message());
      fs::rename(tmp, path, ec);
      if (ec) {
        fs::rename(old, path);
        throw Error("cannot rename " + tmp + " to " + path + ": " + ec.message());
      }
      fs::remove_all(old, ec);
    } else {
      fs::rename(tmp, path, ec);
      if (ec) throw Error("cannot rename " + tmp + " to " + path + ": " + ec.message());
    }
    fsync_path(parent_of(path), true);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
}

}  // namespace tessera::io
