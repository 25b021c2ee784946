#include "pipeline/run_config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>

#include "quant/grid_target.h"
#include "util/error.h"

namespace tessera::pipeline {

using nlohmann::json;

namespace {

json to_json(const RunConfig& c) {
  json j = {{"model", c.model},
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
            {"train_dtype", c.train_dtype}};
  // One section per method with settings: AWQ's, OmniQuant's and TesseraQ's always (their runs
  // must keep their bytes), those of later methods when the run uses them.
  for (const auto& m : methods::methods()) {
    if (m.settings.empty()) continue;
    if (m.section == methods::SectionPolicy::WhenUsed && !c.uses_method(m.id)) continue;
    c.settings.write_section(m, j[m.id]);
  }
  if (!c.target.empty()) j["target"] = c.target;
  return j;
}

// Reads j[key] into `out` when present. The JSON value must be of the setting's own kind: an
// integer setting takes only an integer within its type's range ("wbits": 3.9 or 9e96 are
// refused, not truncated), a number setting any finite number, a flag a boolean, text a string.
template <typename T>
void read(const json& j, const char* key, T& out, const std::string& source) {
  if (!j.contains(key)) return;
  const json& v = j.at(key);
  const auto wrong = [&](const std::string& expected) {
    return Error(source + ": \"" + key + "\" is " + v.dump() + ", expected " + expected);
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) throw wrong("true or false");
    out = v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) throw wrong("an integer");
    const bool fits = v.is_number_unsigned()
                          ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())
                          : (std::is_signed_v<T>
                                 ? v.get<std::int64_t>() >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
                                       v.get<std::int64_t>() <= static_cast<std::int64_t>(std::numeric_limits<T>::max())
                                 : v.get<std::int64_t>() >= 0);
    if (!fits)
      throw wrong("an integer in " + std::to_string(std::numeric_limits<T>::min()) + ".." +
                  std::to_string(std::numeric_limits<T>::max()));
    out = v.is_number_unsigned() ? static_cast<T>(v.get<std::uint64_t>()) : static_cast<T>(v.get<std::int64_t>());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) throw wrong("a number");
    out = v.get<T>();
  } else {
    if (!v.is_string()) throw wrong("a string");
    out = v.get<T>();
  }
}

// The nested object `name` of j (an empty one when absent, so that every key keeps its value).
const json& section(const json& j, const char* name, const std::string& source) {
  static const json empty = json::object();
  if (!j.contains(name)) return empty;
  const json& s = j.at(name);
  if (!s.is_object()) throw Error(source + ": \"" + name + "\" must be an object");
  return s;
}

}  // namespace

std::vector<methods::SettingIssue> RunConfig::issues() const {
  std::vector<methods::SettingIssue> out;
  const auto add = [&](const char* key, const std::string& message) { out.push_back({key, "run config: " + message}); };
  if (model.empty()) add("model", "\"model\" is required");
  if (calib.empty()) add("calib", "\"calib\" (calibration text) is required");
  if (!methods::find_method(method))
    add("method", "unknown method \"" + method + "\" (available: " + methods::method_ids() + ")");
  if (train_dtype != "auto" && train_dtype != "fp32" && train_dtype != "bf16")
    add("train_dtype", "train_dtype must be auto, fp32 or bf16, got \"" + train_dtype + "\"");
  try {
    weight.validate();
  } catch (const Error& e) {
    // The field at fault, from the values: bits, else the group size when a default one passes;
    // the rest (scale bits, super-blocks) comes from a target.
    auto probe = weight;
    probe.group_size = quant::WeightQuantSpec{}.group_size;
    bool group_at_fault = false;
    try {
      probe.validate();
      group_at_fault = true;
    } catch (const Error&) {
    }
    const char* key = weight.bits < 2 || weight.bits > 8 ? "wbits" : group_at_fault ? "group" : "target";
    out.push_back({key, e.what()});
  }
  if (!target.empty()) {
    const auto* t = quant::find_grid_target(target);
    if (!t) {
      add("target", "unknown target \"" + target + "\" (available: " + quant::grid_target_ids() + ")");
    } else if (!weight.same_grid(t->spec)) {
      add("target", "target " + target + " is " + t->spec.label() + ", the weight settings say " + weight.label());
    }
  }
  if (act_bits != 0 && (act_bits < 2 || act_bits > 8))
    add("abits", "abits must be 0 (no activation quantization) or 2..8, got " + std::to_string(act_bits));
  if (samples < 1) add("samples", "samples must be at least 1");
  if (seq_len < 2) add("seq_len", "seq_len must be at least 2");
  if (batch_size < 1) add("batch", "batch must be at least 1");
  for (auto& issue : settings.issues()) out.push_back(std::move(issue));
  return out;
}

void RunConfig::validate() const {
  const auto found = issues();
  if (!found.empty()) throw Error(found.front().message);
}

bool RunConfig::uses_method(const std::string& id) const {
  if (method == id) return true;
  const auto* m = methods::find_method(method);
  return m && !m->init_setting.empty() && settings.text(method, m->init_setting) == id;
}

void RunConfig::apply_target() {
  if (target.empty()) return;
  const auto* t = quant::find_grid_target(target);
  if (!t) throw Error("unknown target \"" + target + "\" (available: " + quant::grid_target_ids() + ")");
  weight = t->spec;
}

std::string RunConfig::to_json_text() const { return to_json(*this).dump(2) + "\n"; }

std::string RunConfig::identity_json() const {
  json j = to_json(*this);
  j.erase("device");
  j.erase("batch");
  // Settings of other methods are irrelevant to a run's numbers; dropping them keeps the identity
  // of existing runs unchanged when a method gains settings. AWQ's section was always kept.
  for (const auto& m : methods::methods()) {
    if (!j.contains(m.id)) continue;
    if (!uses_method(m.id) && m.section != methods::SectionPolicy::AlwaysWrittenAndInIdentity) {
      j.erase(m.id);
      continue;
    }
    for (const auto& s : m.settings)
      if (!s.in_identity) j[m.id].erase(s.key);
  }
  // train_dtype resolved (a run resumed on another device must not mix dtypes); fp32, the only
  // dtype before the setting existed, is left out so that earlier CPU runs keep their identity.
  const auto* info = methods::find_method(method);
  if (!info || !info->uses_train_dtype || !trains_in_bf16(device.rfind("cuda", 0) == 0))
    j.erase("train_dtype");
  else
    j["train_dtype"] = "bf16";
  return j.dump();
}

RunConfig RunConfig::from_json_text(const std::string& text, const std::string& source, const RunConfig& base) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(source + ": not a JSON object");
  static const char* known[] = {"model",   "tokenizer", "calib", "method", "wbits",       "group", "symmetric", "abits",
                                "samples", "seq_len",   "seed",  "device", "train_dtype", "batch", "target"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto* m = methods::find_method(it.key());
    if (std::find(std::begin(known), std::end(known), it.key()) == std::end(known) && !(m && !m->settings.empty()))
      throw Error(source + ": unknown setting \"" + it.key() + "\"");
  }
  RunConfig c = base;
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
  read(j, "train_dtype", c.train_dtype, source);
  read(j, "target", c.target, source);
  if (!c.target.empty()) {  // the grid is the target's; wbits, group and symmetric must agree with it
    const auto stated = c.weight;
    try {
      c.apply_target();
    } catch (const Error& e) {
      throw Error(source + ": " + e.what());
    }
    if ((j.contains("wbits") && stated.bits != c.weight.bits) ||
        (j.contains("group") && stated.group_size != c.weight.group_size) ||
        (j.contains("symmetric") && stated.symmetric != c.weight.symmetric))
      throw Error(source + ": target " + c.target + " is " + c.weight.label() + ", but wbits/group/symmetric say " +
                  stated.label());
  }
  for (const auto& m : methods::methods())
    if (!m.settings.empty()) c.settings.read_section(m, section(j, m.id.c_str(), source), source);
  return c;
}

RunConfig RunConfig::from_json_text(const std::string& text, const std::string& source) {
  return from_json_text(text, source, RunConfig());
}

RunConfig RunConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open run config " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), path);
}

}  // namespace tessera::pipeline
