#include "pipeline/run_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"

namespace tessera::pipeline {

using nlohmann::json;

namespace {

json to_json(const RunConfig& c) {
  return {{"model", c.model},
          {"tokenizer", c.tokenizer},
          {"calib", c.calib},
          {"method", c.method},
          {"wbits", c.weight.bits},
          {"group", c.weight.group_size},
          {"symmetric", c.weight.symmetric},
          {"abits", c.act_bits},
          {"samples", c.samples},
          {"seq_len", c.seq_len},
          {"seed", c.seed},
          {"device", c.device},
          {"batch", c.batch_size},
          {"awq", {{"grid", c.awq_grid},
                   {"clip", c.awq_clip},
                   {"clip_grid", c.awq_clip_grid},
                   {"max_shrink", c.awq_max_shrink},
                   {"clip_tokens", c.awq_clip_tokens}}}};
}

template <typename T>
void read(const json& j, const char* key, T& out, const std::string& source) {
  if (!j.contains(key)) return;
  try {
    out = j.at(key).get<T>();
  } catch (const json::exception&) {
    throw Error(source + ": \"" + key + "\" has the wrong type");
  }
}

}  // namespace

void RunConfig::validate() const {
  if (model.empty()) throw Error("run config: \"model\" is required");
  if (calib.empty()) throw Error("run config: \"calib\" (calibration text) is required");
  if (method != "rtn" && method != "awq")
    throw Error("run config: unknown method \"" + method + "\" (available: rtn, awq)");
  weight.validate();
  if (act_bits != 0 && (act_bits < 2 || act_bits > 8))
    throw Error("run config: abits must be 0 (no activation quantization) or 2..8, got " + std::to_string(act_bits));
  if (samples < 1) throw Error("run config: samples must be at least 1");
  if (seq_len < 2) throw Error("run config: seq_len must be at least 2");
  if (batch_size < 1) throw Error("run config: batch must be at least 1");
  if (awq_grid < 1) throw Error("run config: awq.grid must be at least 1");
  if (awq_clip_grid < 1) throw Error("run config: awq.clip_grid must be at least 1");
  if (awq_max_shrink < 0 || awq_max_shrink >= 1) throw Error("run config: awq.max_shrink must be in [0, 1)");
  if (awq_clip_tokens < 1) throw Error("run config: awq.clip_tokens must be at least 1");
}

std::string RunConfig::to_json_text() const { return to_json(*this).dump(2) + "\n"; }

std::string RunConfig::identity_json() const {
  json j = to_json(*this);
  j.erase("device");
  j.erase("batch");
  return j.dump();
}

RunConfig RunConfig::from_json_text(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(source + ": not a JSON object");
  static const char* known[] = {"model", "tokenizer", "calib", "method", "wbits", "group", "symmetric",
                                "abits", "samples", "seq_len", "seed", "device", "batch", "awq"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(std::begin(known), std::end(known), it.key()) == std::end(known))
      throw Error(source + ": unknown setting \"" + it.key() + "\"");
  }
  RunConfig c;
  read(j, "model", c.model, source);
  read(j, "tokenizer", c.tokenizer, source);
  read(j, "calib", c.calib, source);
  read(j, "method", c.method, source);
  read(j, "wbits", c.weight.bits, source);
  read(j, "group", c.weight.group_size, source);
  read(j, "symmetric", c.weight.symmetric, source);
  read(j, "abits", c.act_bits, source);
  read(j, "samples", c.samples, source);
  read(j, "seq_len", c.seq_len, source);
  read(j, "seed", c.seed, source);
  read(j, "device", c.device, source);
  read(j, "batch", c.batch_size, source);
  if (j.contains("awq")) {
    const json& a = j["awq"];
    if (!a.is_object()) throw Error(source + ": \"awq\" must be an object");
    read(a, "grid", c.awq_grid, source);
    read(a, "clip", c.awq_clip, source);
    read(a, "clip_grid", c.awq_clip_grid, source);
    read(a, "max_shrink", c.awq_max_shrink, source);
    read(a, "clip_tokens", c.awq_clip_tokens, source);
  }
  return c;
}

RunConfig RunConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open run config " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), path);
}

}  // namespace tessera::pipeline
