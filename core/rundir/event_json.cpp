#include "rundir/event_json.h"

#include <unistd.h>

#include "util/error.h"
#include "util/version.h"

namespace tessera::rundir {

using nlohmann::json;

namespace {

using Kind = RunEvent::Kind;

struct KindName {
  Kind kind;
  const char* name;
};
constexpr KindName kKindNames[] = {
    {Kind::RunStarted, "run_started"},
    {Kind::BlockStarted, "block_started"},
    {Kind::StepLoss, "step_loss"},
    {Kind::StepSkipped, "step_skipped"},
    {Kind::HardFraction, "hard_fraction"},
    {Kind::LayerStats, "layer_stats"},
    {Kind::BlockFinished, "block_finished"},
    {Kind::RunFinished, "run_finished"},
    {Kind::Memory, "memory"},
    {Kind::Evaluated, "evaluated"},
    {Kind::Log, "log"},
};

// Optional fields keep their default when absent, but a present field of the wrong type is an error.
template <typename T>
void optional_field(const json& j, const char* key, T& out, const std::string& kind) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw Error("run event \"" + kind + "\": field \"" + key + "\" has the wrong type");
  }
}

// Protocol 1.x (events.jsonl of runs made before 2.0) put the kind's main number in "value" and a
// second one in "before", and a memory sample's time in "seconds".
void read_version_1_fields(const json& j, RunEvent& e, const std::string& kind) {
  double value = 0, before = 0;
  optional_field(j, "value", value, kind);
  optional_field(j, "before", before, kind);
  switch (e.kind) {
    case Kind::StepLoss:
      e.train_loss = value;
      break;
    case Kind::StepSkipped:
      e.lr_factor = value;
      break;
    case Kind::HardFraction:
      e.hard_fraction = value;
      e.target_hard_fraction = before;
      break;
    case Kind::BlockFinished:
      e.loss = value;
      e.loss_rtn = before;
      break;
    case Kind::Memory:
      e.elapsed_seconds = e.seconds;
      e.seconds = 0;
      break;
    case Kind::Evaluated:
      e.perplexity = value;
      e.text_path = e.message;
      e.message.clear();
      break;
    default:
      break;
  }
}

}  // namespace

std::string protocol_version_string() {
  return std::to_string(kProtocolMajorVersion) + "." + std::to_string(kProtocolMinorVersion);
}

int protocol_major_of(const std::string& version) {
  try {
    return std::stoi(version.substr(0, version.find('.')));
  } catch (const std::exception&) {
    return -1;
  }
}

json hello_message(const std::string& role) {
  return {{"type", "hello"}, {"protocol", kProtocolName}, {"version", protocol_version_string()},
          {"role", role},    {"tessera", kVersion},       {"pid", static_cast<std::int64_t>(getpid())}};
}

const char* run_event_kind_name(Kind kind) {
  for (const auto& k : kKindNames)
    if (k.kind == kind) return k.name;
  return "log";
}

bool is_known_run_event_kind(const std::string& name) {
  for (const auto& k : kKindNames)
    if (name == k.name) return true;
  return false;
}

json to_json(const RunEvent& e) {
  json j = {{"kind", run_event_kind_name(e.kind)}};
  if (e.block >= 0) j["block"] = e.block;
  switch (e.kind) {
    case Kind::RunStarted:
      j["total_blocks"] = e.total_blocks;
      j["message"] = e.message;
      break;
    case Kind::BlockStarted:
      j["total_blocks"] = e.total_blocks;
      break;
    case Kind::StepLoss:
      j.update({{"step", e.step},
                {"total_steps", e.total_steps},
                {"iteration", e.iteration},
                {"total_iterations", e.total_iterations},
                {"train_loss", e.train_loss},
                {"gpu_memory_bytes", e.gpu_memory_bytes}});
      break;
    case Kind::StepSkipped:
      j.update({{"step", e.step}, {"lr_factor", e.lr_factor}, {"message", e.message}});
      break;
    case Kind::HardFraction:
      j.update({{"step", e.step},
                {"total_steps", e.total_steps},
                {"iteration", e.iteration},
                {"total_iterations", e.total_iterations},
                {"hard_fraction", e.hard_fraction},
                {"target_hard_fraction", e.target_hard_fraction}});
      break;
    case Kind::LayerStats:
      j.update({{"layer", e.layer},
                {"rel_weight_error", e.rel_weight_error},
                {"output_mse", e.output_mse},
                {"flip_ratio", e.flip_ratio},
                {"dst_min", e.dst_min},
                {"dst_max", e.dst_max},
                {"dst_std", e.dst_std}});
      break;
    case Kind::BlockFinished:
      j.update({{"total_blocks", e.total_blocks},
                {"loss_rtn", e.loss_rtn},
                {"loss", e.loss},
                {"seconds", e.seconds},
                {"eta_seconds", e.eta_seconds}});
      break;
    case Kind::RunFinished:
      j["seconds"] = e.seconds;
      break;
    case Kind::Memory:
      j.update({{"elapsed_seconds", e.elapsed_seconds},
                {"gpu_memory_bytes", e.gpu_memory_bytes},
                {"rss_bytes", e.rss_bytes}});
      break;
    case Kind::Evaluated:
      j.update({{"perplexity", e.perplexity}, {"text_path", e.text_path}, {"seconds", e.seconds}});
      break;
    case Kind::Log:
      j["message"] = e.message;
      break;
  }
  return j;
}

RunEvent run_event_from_json(const json& j, int major_version) {
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string()) throw Error("a run event without a \"kind\"");
  RunEvent e;
  const std::string kind = j["kind"].get<std::string>();
  bool known = false;
  for (const auto& k : kKindNames)
    if (kind == k.name) {
      e.kind = k.kind;
      known = true;
    }
  if (!known) throw Error("unknown run event kind \"" + kind + "\"");
  optional_field(j, "block", e.block, kind);
  optional_field(j, "total_blocks", e.total_blocks, kind);
  optional_field(j, "step", e.step, kind);
  optional_field(j, "total_steps", e.total_steps, kind);
  optional_field(j, "iteration", e.iteration, kind);
  optional_field(j, "total_iterations", e.total_iterations, kind);
  optional_field(j, "gpu_memory_bytes", e.gpu_memory_bytes, kind);
  optional_field(j, "rss_bytes", e.rss_bytes, kind);
  optional_field(j, "layer", e.layer, kind);
  optional_field(j, "message", e.message, kind);
  optional_field(j, "train_loss", e.train_loss, kind);
  optional_field(j, "lr_factor", e.lr_factor, kind);
  optional_field(j, "hard_fraction", e.hard_fraction, kind);
  optional_field(j, "target_hard_fraction", e.target_hard_fraction, kind);
  optional_field(j, "loss_rtn", e.loss_rtn, kind);
  optional_field(j, "loss", e.loss, kind);
  optional_field(j, "perplexity", e.perplexity, kind);
  optional_field(j, "text_path", e.text_path, kind);
  optional_field(j, "elapsed_seconds", e.elapsed_seconds, kind);
  optional_field(j, "rel_weight_error", e.rel_weight_error, kind);
  optional_field(j, "output_mse", e.output_mse, kind);
  optional_field(j, "flip_ratio", e.flip_ratio, kind);
  optional_field(j, "dst_min", e.dst_min, kind);
  optional_field(j, "dst_max", e.dst_max, kind);
  optional_field(j, "dst_std", e.dst_std, kind);
  optional_field(j, "seconds", e.seconds, kind);
  optional_field(j, "eta_seconds", e.eta_seconds, kind);
  if (major_version < 2) read_version_1_fields(j, e, kind);
  return e;
}

}  // namespace tessera::rundir
