#include "rundir/run_manifest.h"

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "util/error.h"

namespace tessera::rundir {

using nlohmann::json;

std::string RunFingerprint::differences(const RunFingerprint& o) const {
  std::string out;
  auto cmp = [&](const char* what, const std::string& a, const std::string& b) {
    if (a != b) out += std::string(what) + ": the run has " + a + ", now " + b + "\n";
  };
  cmp("model files (sha256)", model_sha256, o.model_sha256);
  cmp("settings", config, o.config);
  cmp("calibration tokens (sha256)", calibration_sha256, o.calibration_sha256);
  cmp("code version", code_version, o.code_version);
  return out;
}

namespace {

// Takes `key` out of `j` into `out` when present; a present key of the wrong type is an error.
template <typename T>
void take(json& j, const char* key, T& out, const std::string& what) {
  const auto it = j.find(key);
  if (it == j.end()) return;
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw Error(what + ": \"" + key + "\" has the wrong type");
  }
  j.erase(it);
}

template <typename T>
void take(json& j, const char* key, std::optional<T>& out, const std::string& what) {
  if (!j.contains(key)) return;
  T value{};
  take(j, key, value, what);
  out = value;
}

}  // namespace

json to_json(const RunManifest& m) {
  json calibration = m.calibration.other;
  calibration.update({{"source", m.calibration.source},
                      {"samples", m.calibration.samples},
                      {"seq_len", m.calibration.seq_len},
                      {"seed", m.calibration.seed},
                      {"offsets", m.calibration.offsets},
                      {"corpus_tokens", m.calibration.corpus_tokens}});
  if (m.calibration.newlines) calibration["newlines"] = *m.calibration.newlines;
  json j = m.other;
  j.update({{"format", "tessera-run"},
            {"config", m.config},
            {"config_identity", m.fingerprint.config},
            {"model_sha256", m.fingerprint.model_sha256},
            {"calibration_sha256", m.fingerprint.calibration_sha256},
            {"calibration", calibration},
            {"tokenizer", m.tokenizer},
            {"code_version", m.fingerprint.code_version},
            {"torch_version", m.torch_version},
            {"blocks", m.blocks},
            {"finished", m.finished}});
  if (m.seconds) j["seconds"] = *m.seconds;
  if (m.placement) j["placement"] = *m.placement;
  return j;
}

RunManifest manifest_from_json(const json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("config") || !j["config"].is_object())
    throw Error(what + " is not a run manifest (no \"config\")");
  json rest = j;
  RunManifest m;
  take(rest, "config", m.config, what);
  take(rest, "config_identity", m.fingerprint.config, what);
  take(rest, "model_sha256", m.fingerprint.model_sha256, what);
  take(rest, "calibration_sha256", m.fingerprint.calibration_sha256, what);
  take(rest, "code_version", m.fingerprint.code_version, what);
  if (rest.contains("calibration") && rest["calibration"].is_object()) {
    json c = rest["calibration"];
    take(c, "source", m.calibration.source, what);
    take(c, "samples", m.calibration.samples, what);
    take(c, "seq_len", m.calibration.seq_len, what);
    take(c, "seed", m.calibration.seed, what);
    take(c, "offsets", m.calibration.offsets, what);
    take(c, "corpus_tokens", m.calibration.corpus_tokens, what);
    take(c, "newlines", m.calibration.newlines, what);
    m.calibration.other = c;
    rest.erase("calibration");
  }
  take(rest, "tokenizer", m.tokenizer, what);
  take(rest, "torch_version", m.torch_version, what);
  take(rest, "blocks", m.blocks, what);
  take(rest, "finished", m.finished, what);
  take(rest, "seconds", m.seconds, what);
  take(rest, "placement", m.placement, what);
  rest.erase("format");
  m.other = rest;
  return m;
}

RunManifest read_manifest(const RunDirectory& dir) {
  if (!dir.has_manifest()) throw Error(dir.path() + " is not a Tessera run directory (no run.json)");
  return manifest_from_json(io::read_json_file(dir.manifest_path()), dir.manifest_path());
}

void write_manifest(const RunDirectory& dir, const RunManifest& m) {
  io::write_file_atomically(dir.manifest_path(), [&](std::ostream& out) { out << to_json(m).dump(2) << "\n"; });
}

}  // namespace tessera::rundir
