#include "rundir/event_log.h"

#include "rundir/event_json.h"
#include "util/error.h"
#include "util/log.h"

namespace tessera::rundir {

using nlohmann::json;

RunEventLog::~RunEventLog() {
  if (file_) std::fclose(file_);  // NOLINT(cert-err33-c): each line was flushed and checked when written
}

void RunEventLog::append(const RunEvent& event) {
  if (failed_) return;
  if (!file_) {
    file_ = std::fopen(path_.c_str(), "a");
    if (!file_) {
      logger()->warn("cannot append to {}; the run goes on without an event log", path_);
      failed_ = true;
      return;
    }
    // A line cut short (a full disk, a killed writer) is ended first, so that this writer's lines
    // stay whole; the reader then refuses only that one line.
    if (std::fseek(file_, 0, SEEK_END) == 0 && std::ftell(file_) > 0) {
      std::FILE* check = std::fopen(path_.c_str(), "rb");
      if (check && std::fseek(check, -1, SEEK_END) == 0 && std::fgetc(check) != '\n') write_line("");
      if (check) std::fclose(check);  // NOLINT(cert-err33-c): read only
    }
    write_line(hello_message("events").dump());
  }
  write_line(json{{"type", "event"}, {"event", to_json(event)}}.dump(-1, ' ', false, json::error_handler_t::replace));
}

void RunEventLog::write_line(const std::string& line) {
  if (!file_) return;
  const std::string text = line + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0) {
    logger()->warn("cannot write the event log {} (disk full?); the run goes on without it", path_);
    std::fclose(file_);  // NOLINT(cert-err33-c): the log is given up already
    file_ = nullptr;
    failed_ = true;
  }
}

RunEventReader::RunEventReader(const RunDirectory& dir) : path_(dir.events_path()) {
  if (!dir.has_events())
    throw Error(dir.path() + " has no events.jsonl (not a run directory, or made before Tessera recorded events)");
  in_.open(path_, std::ios::binary);
  if (!in_) throw Error("cannot read " + path_);
}

std::vector<RunEvent> RunEventReader::read_appended() {
  char buffer[65536];
  while (in_.read(buffer, sizeof(buffer)) || in_.gcount() > 0)
    pending_.append(buffer, static_cast<std::size_t>(in_.gcount()));
  in_.clear();  // at the end of the file; later reads see what the writer appends
  std::vector<RunEvent> events;
  std::size_t start = 0, end;
  while ((end = pending_.find('\n', start)) != std::string::npos) {
    ++line_number_;
    read_line(pending_.substr(start, end - start), events);
    start = end + 1;
  }
  pending_.erase(0, start);
  return events;
}

void RunEventReader::read_line(const std::string& line, std::vector<RunEvent>& out) {
  if (line.empty()) return;
  const std::string where = path_ + " line " + std::to_string(line_number_);
  const json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded() || !message.is_object() || !message.contains("type") || !message["type"].is_string()) {
    // A line cut short when its writer died or the disk filled: the rest of the run is good.
    logger()->warn("{} skipped: not a complete JSON line", where);
    return;
  }
  if (message["type"] == "hello") {
    const std::string version = message.value("version", std::string("?"));
    if (message.value("protocol", std::string()) != kProtocolName)
      throw Error(where + " is not a Tessera event log's hello");
    const int major = protocol_major_of(version);
    if (major < kOldestEventsMajorVersion || major > kProtocolMajorVersion)
      throw Error(where + " was written in worker protocol " + version + ", this side reads " +
                  std::to_string(kOldestEventsMajorVersion) + ".x to " + protocol_version_string());
    major_version_ = major;  // of this writer's lines, up to the next hello
    return;
  }
  if (message["type"] != "event") return;
  const auto event = message.find("event");
  if (event == message.end() || !event->is_object() || !is_known_run_event_kind(event->value("kind", std::string())))
    return;  // a kind of a later minor version
  out.push_back(run_event_from_json(*event, major_version_));
}

}  // namespace tessera::rundir
