#pragma once
// The JSON of a RunEvent and the lines of events.jsonl. The file's lines are worker-protocol
// messages (a hello per writer, then {"type":"event","event":{...}}), which the worker forwards to
// the workbench; so the protocol's name and version are defined here, below protocol/, which
// takes them from here (docs/worker-protocol.md).
#include <nlohmann/json.hpp>
#include <string>

#include "rundir/run_event.h"

namespace tessera::rundir {

inline constexpr const char* kProtocolName = "tessera-worker";
// 2.0: each number of a run event has a field of its own (1.x had "value" and "before", whose
// meaning depended on the kind); events.jsonl files written in 1.x are still read.
inline constexpr int kProtocolMajorVersion = 2;
inline constexpr int kProtocolMinorVersion = 0;
inline constexpr int kOldestEventsMajorVersion = 1;  // the oldest events.jsonl files still read
std::string protocol_version_string();               // "2.0"
// The major number of a "major.minor" version; -1 when `version` is not one.
int protocol_major_of(const std::string& version);
// {"type":"hello","protocol":...,"version":...,"role":role,"tessera":...,"pid":...}; role:
// "worker", "client", "events".
nlohmann::json hello_message(const std::string& role);

nlohmann::json to_json(const RunEvent& event);
// Throws tessera::Error naming the kind and the field when a field has the wrong type or the kind
// is unknown. `major_version` is that of the hello the event came after: events.jsonl files of
// runs made before 2.0 hold 1.x events.
RunEvent run_event_from_json(const nlohmann::json& j, int major_version = kProtocolMajorVersion);
const char* run_event_kind_name(RunEvent::Kind kind);  // "step_loss", ...
// False for a kind this version does not know (a later minor version's): readers skip such events.
bool is_known_run_event_kind(const std::string& name);

}  // namespace tessera::rundir
