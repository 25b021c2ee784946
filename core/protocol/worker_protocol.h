#pragma once
// The worker protocol: JSON lines between a front end (the workbench) and `tessera worker`, and
// the lines of a run directory's events.jsonl. Requests go in on the worker's stdin, messages
// come out on its stdout, one JSON object per line; docs/worker-protocol.md describes every
// message with an example. Torch-free, so the GUI links it without the core.
//
// Versions: "major.minor". Both sides send a hello first and refuse a peer whose major version
// differs (minor versions only add optional fields and messages, which an older peer ignores).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/job_types.h"
#include "pipeline/run_config.h"
#include "rundir/event_json.h"
#include "util/error.h"

namespace tessera::protocol {

using Json = nlohmann::json;

// The protocol's name and version are those of events.jsonl's lines (rundir/event_json.h), which the
// worker forwards as they are.
inline constexpr const char* kProtocolName = rundir::kProtocolName;
inline constexpr int kMajorVersion = rundir::kProtocolMajorVersion;
inline constexpr int kMinorVersion = rundir::kProtocolMinorVersion;
std::string version_string();  // "1.0"

// A line the other side sent that is not a valid message of this protocol (bad JSON, a missing or
// mistyped field, an unknown request). The text names the message type and the field.
class ProtocolError : public Error {
 public:
  using Error::Error;
};

// The first message in each direction (and the first line each writer adds to events.jsonl).
Json hello_message(const std::string& role);  // role: "worker", "client", "events"
// Throws ProtocolError naming both versions when `message` is not a hello of this protocol or its
// major version differs from ours. `peer` names the other side in the message ("the worker at ...").
void check_hello(const Json& message, const std::string& peer);

// Parses one line; throws ProtocolError quoting (the start of) the line when it is not a JSON
// object with a string "type".
Json parse_line(const std::string& line);

// ---- payloads (a run event's JSON: rundir/event_json.h) ---------------------------------------
Json to_json(const api::EvalRequest& r);
api::EvalRequest eval_request_from_json(const Json& j);
Json to_json(const api::EvalReport& r);
api::EvalReport eval_report_from_json(const Json& j);
Json to_json(const api::ExportRequest& r);
api::ExportRequest export_request_from_json(const Json& j);
Json to_json(const exporting::FallbackTensor& t);
Json to_json(const api::ExportResult& r);
api::ExportResult export_result_from_json(const Json& j);
Json to_json(const std::vector<api::ExportFormatInfo>& formats);
std::vector<api::ExportFormatInfo> export_formats_from_json(const Json& j);
Json to_json(const api::LayerDetail& d);
api::LayerDetail layer_detail_from_json(const Json& j);
Json to_json(const api::ModelSummary& s);
api::ModelSummary model_summary_from_json(const Json& j);
Json to_json(const std::vector<api::DeviceInfo>& devices);
std::vector<api::DeviceInfo> devices_from_json(const Json& j);
Json to_json(const eval::LayerStats& s);
eval::LayerStats layer_stats_from_json(const Json& j);

// The result of a quantize request: the run's report and, when an evaluation text was given, the
// quantized model's perplexity.
struct QuantizeResult {
  api::QuantizeReport report;
  double perplexity = 0;  // 0 = not evaluated
};
Json to_json(const QuantizeResult& r);
QuantizeResult quantize_result_from_json(const Json& j);

struct QuantizeRequest {
  pipeline::RunConfig config;
  std::string run_dir;
  bool resume = false;
  std::string eval_text;  // "" = no evaluation after quantizing
};
Json to_json(const QuantizeRequest& r);
QuantizeRequest quantize_request_from_json(const Json& j);

// The "data" messages of a fetch carry file bytes as base64 (RFC 4648, with padding).
std::string base64_encode(const char* data, std::size_t size);

// ---- messages --------------------------------------------------------------------------------
// {"type": type, "job": job, ...fields}; job < 0 leaves "job" out (protocol-level errors). A request
// carries a "job" id chosen by the client, and every message about that job the same id.
Json job_message(const std::string& type, std::int64_t job, Json fields = Json::object());

// A typed field of a message; throws ProtocolError naming the message type and the key when it is
// missing or of the wrong type.
template <typename T>
T field(const Json& message, const char* key) {
  const std::string type = message.is_object() && message.contains("type") && message["type"].is_string()
                               ? message["type"].get<std::string>()
                               : "?";
  if (!message.is_object())
    throw ProtocolError("message \"" + type + "\" is not an object where \"" + key + "\" was expected");
  const auto it = message.find(key);
  if (it == message.end()) throw ProtocolError("message \"" + type + "\" has no field \"" + key + "\"");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ProtocolError("message \"" + type + "\": field \"" + key + "\" has the wrong type");
  }
}

}  // namespace tessera::protocol
