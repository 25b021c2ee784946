#pragma once
// run.json: what a run was made from (settings, model and calibration hashes, versions) and how far
// it got. Resume compares the fingerprint; evaluation and exports read only finished runs.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "rundir/run_directory.h"

namespace tessera::rundir {

// The inputs that must match for a run to be resumed.
struct RunFingerprint {
  std::string model_sha256;  // of the model file(s)
  std::string config;        // RunConfig::identity_json()
  std::string calibration_sha256;
  std::string code_version;
  // Differences from `other`, one line each ("settings: ... vs ..."); empty when they match.
  std::string differences(const RunFingerprint& other) const;
};

// The calibration windows, enough to draw the same tokens again.
struct CalibrationRecord {
  std::string source;
  std::int64_t samples = 0, seq_len = 0;
  std::uint64_t seed = 0;
  std::vector<std::int64_t> offsets;
  std::int64_t corpus_tokens = 0;
  std::optional<std::string> newlines;  // how text files were read; absent in runs made before it was recorded
  nlohmann::json other = nlohmann::json::object();  // keys this version does not know (see RunManifest)
};

struct RunManifest {
  // The settings as RunConfig::to_json_text() wrote them; RunConfig (pipeline/) parses them.
  nlohmann::json config = nlohmann::json::object();
  RunFingerprint fingerprint;
  CalibrationRecord calibration;
  std::string tokenizer;
  std::string torch_version;
  std::int64_t blocks = 0;
  bool finished = false;
  std::optional<double> seconds;         // written when the run finished
  std::optional<std::string> placement;  // where calibration activations lived; written when finished
  // Keys this version does not know (a later version's), kept so that writing a manifest read from
  // disk changes nothing.
  nlohmann::json other = nlohmann::json::object();
};

// run.json's JSON (keys in name order, as nlohmann writes objects) and back. Reading throws naming
// `what` (the file) when "config" is missing or a known key has the wrong type.
nlohmann::json to_json(const RunManifest& m);
RunManifest manifest_from_json(const nlohmann::json& j, const std::string& what);

// Throws naming the folder when it holds no run.json, or the file when it is not a run manifest.
RunManifest read_manifest(const RunDirectory& dir);
// Written atomically, indented by 2 with a final newline.
void write_manifest(const RunDirectory& dir, const RunManifest& m);

}  // namespace tessera::rundir
