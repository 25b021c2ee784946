#pragma once
// A run directory's events.jsonl: every RunEvent of the run as a worker-protocol line
// ({"type":"event","event":{...}}), after a hello line of each process that opens it. Appended and
// flushed per line, so that a follower (the worker's "follow" request) sees the run live. A write
// that fails (a full disk) loses only the log, never the run: it is reported once and the log
// stops. Torch-free.
#include <cstdio>
#include <string>

#include "pipeline/run_events.h"

namespace tessera::pipeline {

class RunEventLog {
 public:
  explicit RunEventLog(std::string run_dir) : run_dir_(std::move(run_dir)) {}
  ~RunEventLog();
  RunEventLog(const RunEventLog&) = delete;
  RunEventLog& operator=(const RunEventLog&) = delete;

  // Opens the file for appending (the run directory must exist) on the first call.
  void append(const RunEvent& event);

 private:
  void write_line(const std::string& line);

  std::string run_dir_;
  std::FILE* file_ = nullptr;
  bool failed_ = false;
};

}  // namespace tessera::pipeline
