#include "pipeline/run_event_log.h"

#include "pipeline/run_directory.h"
#include "protocol/worker_protocol.h"
#include "util/log.h"

namespace tessera::pipeline {

RunEventLog::~RunEventLog() {
  if (file_) std::fclose(file_);  // NOLINT(cert-err33-c): each line was flushed and checked when written
}

void RunEventLog::append(const RunEvent& event) {
  if (failed_) return;
  if (!file_) {
    const std::string path = RunDirectory(run_dir_).events_path();
    file_ = std::fopen(path.c_str(), "a");
    if (!file_) {
      logger()->warn("cannot append to {}; the run goes on without an event log", path);
      failed_ = true;
      return;
    }
    // A line cut short (a full disk, a killed writer) is ended first, so that this writer's lines
    // stay whole; the reader then refuses only that one line.
    if (std::fseek(file_, 0, SEEK_END) == 0 && std::ftell(file_) > 0) {
      std::FILE* check = std::fopen(path.c_str(), "rb");
      if (check && std::fseek(check, -1, SEEK_END) == 0 && std::fgetc(check) != '\n') write_line("");
      if (check) std::fclose(check);  // NOLINT(cert-err33-c): read only
    }
    write_line(protocol::hello_message("events").dump());
  }
  write_line(protocol::Json{{"type", "event"}, {"event", protocol::to_json(event)}}.dump(
      -1, ' ', false, protocol::Json::error_handler_t::replace));
}

void RunEventLog::write_line(const std::string& line) {
  if (!file_) return;
  const std::string text = line + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0) {
    logger()->warn("cannot write the event log of {} (disk full?); the run goes on without it", run_dir_);
    std::fclose(file_);  // NOLINT(cert-err33-c): the log is given up already
    file_ = nullptr;
    failed_ = true;
  }
}

}  // namespace tessera::pipeline
