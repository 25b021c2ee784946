#pragma once
// The on-disk layout of a quantization run, which is what makes a run resumable:
//   run.json                       config, fingerprint, calibration offsets, versions, progress
//   blocks/block_NNN.safetensors   codes, scales, zeros, changed norms, method state (per block)
//   stats/block_NNN.json           the block's losses and per-layer statistics
//   events.jsonl                   every event of the run, as worker-protocol lines (appended as it runs)
//   run.lock                       held (flock) by the process writing the run
// Every file but events.jsonl is written atomically, after its block has finished. This folder
// (core/rundir) is the one place that names these files and reads or writes the JSON ones; the
// block tensors are read and written by model/quantized_block. Torch-free, so the GUI links it.
#include <cstdint>
#include <string>

namespace tessera::rundir {

class RunDirectory {
 public:
  explicit RunDirectory(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  std::string manifest_path() const { return path_ + "/run.json"; }
  std::string block_path(std::int64_t block) const;
  std::string stats_path(std::int64_t block) const;
  std::string events_path() const { return path_ + "/events.jsonl"; }
  std::string lock_path() const { return path_ + "/run.lock"; }
  bool has_manifest() const;
  bool has_events() const;
  bool has_block(std::int64_t block) const;  // the block's codes are on disk
  // The block's codes and statistics are both on disk (the codes are written first).
  bool has_finished_block(std::int64_t block) const;
  void create() const;

 private:
  std::string path_;
};

// An exclusive flock on run.lock for as long as it lives, so that two processes never write one
// run. The kernel releases it when the holder dies (even by SIGKILL), so an interrupted run can
// be resumed at once. Throws naming the directory and the holder's pid when another process has it.
class RunDirectoryLock {
 public:
  explicit RunDirectoryLock(const RunDirectory& dir);
  ~RunDirectoryLock();
  // Whether some process holds the lock of `dir` now (a run is being written there).
  static bool is_held(const RunDirectory& dir);
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace tessera::rundir
