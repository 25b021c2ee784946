#pragma once
// A run directory's events.jsonl: every RunEvent of the run as a worker-protocol line
// ({"type":"event","event":{...}}, rundir/event_json.h), after a hello line of each process that
// opens it. Appended and flushed per line, so that a follower (the worker's "follow" request) sees
// the run live. A write that fails (a full disk) loses only the log, never the run: it is reported
// once and the log stops.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "rundir/event_json.h"
#include "rundir/run_directory.h"
#include "rundir/run_event.h"

namespace tessera::rundir {

class RunEventLog {
 public:
  explicit RunEventLog(const RunDirectory& dir) : path_(dir.events_path()) {}
  ~RunEventLog();
  RunEventLog(const RunEventLog&) = delete;
  RunEventLog& operator=(const RunEventLog&) = delete;

  // Opens the file for appending (the run directory must exist) on the first call.
  void append(const RunEvent& event);

 private:
  void write_line(const std::string& line);

  std::string path_;
  std::FILE* file_ = nullptr;
  bool failed_ = false;
};

// Reads events.jsonl while its writer may still append: each call returns the events of the lines
// completed since the previous call. A line cut short or damaged (a killed writer, a full disk) is
// skipped with a warning, as is an event of a kind this version does not know (a later minor
// version's). Each writer's lines are read in the version of its hello (files of runs made with
// protocol 1.x included); a hello of another protocol or of a later major version throws.
class RunEventReader {
 public:
  explicit RunEventReader(const RunDirectory& dir);  // throws when the run has no events.jsonl
  std::vector<RunEvent> read_appended();

 private:
  void read_line(const std::string& line, std::vector<RunEvent>& out);

  std::string path_;
  std::ifstream in_;
  std::string pending_;  // the start of a line whose end is not written yet
  std::int64_t line_number_ = 0;
  int major_version_ = kProtocolMajorVersion;  // of the last hello read
};

}  // namespace tessera::rundir
