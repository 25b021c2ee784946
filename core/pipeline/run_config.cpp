#include "pipeline/run_config.h"

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
            {"train_dtype", c.train_dtype},
            {"awq",
             {{"grid", c.awq_grid},
              {"clip", c.awq_clip},
              {"clip_grid", c.awq_clip_grid},
              {"max_shrink", c.awq_max_shrink},
              {"clip_tokens", c.awq_clip_tokens}}},
            {"omniquant",
             {{"epochs", c.oq_epochs},
              {"lwc_lr", c.oq_lwc_lr},
              {"let", c.oq_let},
              {"let_lr", c.oq_let_lr},
              {"alpha", c.oq_alpha},
              {"aug_loss", c.oq_aug_loss},
              {"batch", c.oq_batch}}},
            {"tesseraq",
             {{"init", c.tq_init},
              {"schedule", c.tq_schedule},
              {"steps", c.tq_steps},
              {"batch", c.tq_batch},
              {"lr", c.tq_lr},
              {"scale_lr", c.tq_scale_lr},
              {"scale_wd", c.tq_scale_wd},
              {"log_every", c.tq_log_every}}}};
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

void RunConfig::validate() const {
  if (model.empty()) throw Error("run config: \"model\" is required");
  if (calib.empty()) throw Error("run config: \"calib\" (calibration text) is required");
  if (method != "rtn" && method != "awq" && method != "omniquant" && method != "tesseraq")
    throw Error("run config: unknown method \"" + method + "\" (available: rtn, awq, omniquant, tesseraq)");
  if (train_dtype != "auto" && train_dtype != "fp32" && train_dtype != "bf16")
    throw Error("run config: train_dtype must be auto, fp32 or bf16, got \"" + train_dtype + "\"");
  if (oq_epochs < 0) throw Error("run config: omniquant.epochs must be 0 (auto) or more");
  if (!(oq_lwc_lr > 0)) throw Error("run config: omniquant.lwc_lr must be positive");
  if (!(oq_let_lr > 0)) throw Error("run config: omniquant.let_lr must be positive");
  if (!(oq_alpha > 0 && oq_alpha < 1)) throw Error("run config: omniquant.alpha must be in (0, 1)");
  if (oq_let != "auto" && oq_let != "on" && oq_let != "off")
    throw Error("run config: omniquant.let must be auto, on or off, got \"" + oq_let + "\"");
  if (oq_aug_loss != "auto" && oq_aug_loss != "on" && oq_aug_loss != "off")
    throw Error("run config: omniquant.aug_loss must be auto, on or off, got \"" + oq_aug_loss + "\"");
  if (oq_batch < 1) throw Error("run config: omniquant.batch must be at least 1");
  weight.validate();
  if (!target.empty()) {
    const auto* t = quant::find_grid_target(target);
    if (!t) throw Error("run config: unknown target \"" + target + "\" (available: " + quant::grid_target_ids() + ")");
    const auto& w = t->spec;
    if (weight.bits != w.bits || weight.group_size != w.group_size || weight.symmetric != w.symmetric ||
        weight.scale_bits != w.scale_bits)
      throw Error("run config: target " + target + " is " + w.label() + ", the weight settings say " + weight.label());
  }
  if (act_bits != 0 && (act_bits < 2 || act_bits > 8))
    throw Error("run config: abits must be 0 (no activation quantization) or 2..8, got " + std::to_string(act_bits));
  if (samples < 1) throw Error("run config: samples must be at least 1");
  if (seq_len < 2) throw Error("run config: seq_len must be at least 2");
  if (batch_size < 1) throw Error("run config: batch must be at least 1");
  if (awq_grid < 1) throw Error("run config: awq.grid must be at least 1");
  if (awq_clip_grid < 1) throw Error("run config: awq.clip_grid must be at least 1");
  if (awq_max_shrink < 0 || awq_max_shrink >= 1) throw Error("run config: awq.max_shrink must be in [0, 1)");
  if (awq_clip_tokens < 1) throw Error("run config: awq.clip_tokens must be at least 1");
  if (tq_init != "awq" && tq_init != "omniquant" && tq_init != "none")
    throw Error("run config: tesseraq.init must be \"awq\", \"omniquant\" or \"none\", got \"" + tq_init + "\"");
  par_thresholds();
  if (tq_steps < 0) throw Error("run config: tesseraq.steps must not be negative");
  if (tq_batch < 1) throw Error("run config: tesseraq.batch must be at least 1");
  if (!(tq_lr > 0) || !std::isfinite(tq_lr)) throw Error("run config: tesseraq.lr must be positive");
  if (!(tq_scale_lr > 0) || !std::isfinite(tq_scale_lr)) throw Error("run config: tesseraq.scale_lr must be positive");
  if (!(tq_scale_wd >= 0) || !std::isfinite(tq_scale_wd))
    throw Error("run config: tesseraq.scale_wd must not be negative");
  if (tq_log_every < 1) throw Error("run config: tesseraq.log_every must be at least 1");
}

void RunConfig::apply_target() {
  if (target.empty()) return;
  const auto* t = quant::find_grid_target(target);
  if (!t) throw Error("unknown target \"" + target + "\" (available: " + quant::grid_target_ids() + ")");
  weight = t->spec;
}

std::vector<double> RunConfig::par_thresholds() const {
  // tesseraq-method.md 4.5: the official 20- and 10-step lists.
  if (tq_schedule == "paper20")
    return {0.8,  0.65, 0.5,  0.43, 0.38, 0.34, 0.3,  0.27, 0.24, 0.21,
            0.18, 0.15, 0.12, 0.10, 0.08, 0.06, 0.04, 0.02, 0.01, 0.005};
  if (tq_schedule == "paper10") return {0.75, 0.5, 0.375, 0.25, 0.125, 0.09, 0.06, 0.04, 0.02, 0.005};
  const std::string what = "run config: tesseraq.schedule \"" + tq_schedule + "\"";
  std::vector<double> out;
  std::stringstream ss(tq_schedule);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    const std::string t = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(t, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (t.empty() || used != t.size())
      throw Error(what + ": \"" + t + "\" is not a number (use paper20, paper10 or soft fractions like 0.5,0.2,0)");
    if (!(v >= 0 && v < 1)) throw Error(what + ": soft fraction " + t + " is outside [0, 1)");
    if (!out.empty() && v > out.back()) throw Error(what + ": soft fractions must not increase (" + t + ")");
    out.push_back(v);
  }
  if (out.empty()) throw Error(what + ": no soft fractions (use paper20, paper10 or a comma list)");
  return out;
}

std::int64_t RunConfig::omniquant_epochs() const { return oq_epochs > 0 ? oq_epochs : (weight.bits <= 2 ? 40 : 20); }
bool RunConfig::omniquant_let() const { return oq_let == "on" || (oq_let == "auto" && act_bits > 0); }
bool RunConfig::omniquant_aug_loss() const {
  return oq_aug_loss == "on" || (oq_aug_loss == "auto" && weight.bits <= 2);
}

std::string RunConfig::to_json_text() const { return to_json(*this).dump(2) + "\n"; }

std::string RunConfig::identity_json() const {
  json j = to_json(*this);
  j.erase("device");
  j.erase("batch");
  // Settings of other methods are irrelevant to a run's numbers; dropping them keeps the identity
  // of existing runs unchanged when a method gains settings.
  const bool uses_omniquant = method == "omniquant" || (method == "tesseraq" && tq_init == "omniquant");
  if (method == "tesseraq")
    j["tesseraq"].erase("log_every");
  else
    j.erase("tesseraq");
  if (!uses_omniquant) j.erase("omniquant");
  // train_dtype resolved (a run resumed on another device must not mix dtypes); fp32, the only
  // dtype before the setting existed, is left out so that earlier CPU runs keep their identity.
  if (method != "tesseraq" || !trains_in_bf16(device.rfind("cuda", 0) == 0))
    j.erase("train_dtype");
  else
    j["train_dtype"] = "bf16";
  return j.dump();
}

RunConfig RunConfig::from_json_text(const std::string& text, const std::string& source, const RunConfig& base) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(source + ": not a JSON object");
  static const char* known[] = {"model",     "tokenizer",   "calib",   "method",    "wbits",    "group",
                                "symmetric", "abits",       "samples", "seq_len",   "seed",     "device",
                                "batch",     "train_dtype", "awq",     "omniquant", "tesseraq", "target"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(std::begin(known), std::end(known), it.key()) == std::end(known))
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
  const json& a = section(j, "awq", source);
  read(a, "grid", c.awq_grid, source);
  read(a, "clip", c.awq_clip, source);
  read(a, "clip_grid", c.awq_clip_grid, source);
  read(a, "max_shrink", c.awq_max_shrink, source);
  read(a, "clip_tokens", c.awq_clip_tokens, source);
  const json& o = section(j, "omniquant", source);
  read(o, "epochs", c.oq_epochs, source);
  read(o, "lwc_lr", c.oq_lwc_lr, source);
  read(o, "let", c.oq_let, source);
  read(o, "let_lr", c.oq_let_lr, source);
  read(o, "alpha", c.oq_alpha, source);
  read(o, "aug_loss", c.oq_aug_loss, source);
  read(o, "batch", c.oq_batch, source);
  const json& t = section(j, "tesseraq", source);
  read(t, "init", c.tq_init, source);
  read(t, "schedule", c.tq_schedule, source);
  read(t, "steps", c.tq_steps, source);
  read(t, "batch", c.tq_batch, source);
  read(t, "lr", c.tq_lr, source);
  read(t, "scale_lr", c.tq_scale_lr, source);
  read(t, "scale_wd", c.tq_scale_wd, source);
  read(t, "log_every", c.tq_log_every, source);
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
