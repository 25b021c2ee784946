#include "methods/method_registry.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "methods/method_list.h"
#include "util/error.h"

namespace tessera::methods {

#define TESSERA_DECLARE_METHOD_INFO(id) MethodInfo id##_method_info();
TESSERA_METHODS(TESSERA_DECLARE_METHOD_INFO)
#undef TESSERA_DECLARE_METHOD_INFO

namespace {

const char* type_name(SettingType t) {
  switch (t) {
    case SettingType::Int:
      return "an integer";
    case SettingType::Number:
      return "a number";
    case SettingType::Flag:
      return "true or false";
    case SettingType::Choice:
    case SettingType::Text:
      return "a string";
  }
  return "?";
}

// Shortest text that reads back as the same double (as JSON writes numbers).
std::string shortest(double v) {
  char buf[32];
  for (int precision = 6; precision <= 17; ++precision) {
    // %.17g of any double needs at most 24 characters; a negative result is an encoding error.
    if (std::snprintf(buf, sizeof buf, "%.*g", precision, v) < 0) return "?";
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string join(const std::vector<std::string>& items, const std::string& last_separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? last_separator : ", ";
    out += items[i];
  }
  return out;
}

// "must be positive", "must be at least 1", "must be in [0, 1)".
std::string range_text(const Setting& s) {
  const bool lo = std::isfinite(s.min), hi = std::isfinite(s.max);
  if (lo && hi)
    return "must be in " + std::string(s.min_open ? "(" : "[") + shortest(s.min) + ", " + shortest(s.max) +
           (s.max_open ? ")" : "]");
  if (lo) {
    if (s.min == 0) return s.min_open ? "must be positive" : "must not be negative";
    return (s.min_open ? "must be greater than " : "must be at least ") + shortest(s.min);
  }
  if (hi) return (s.max_open ? "must be less than " : "must be at most ") + shortest(s.max);
  return "must be a finite number";
}

bool in_range(const Setting& s, double v) {
  if (std::isnan(v)) return false;
  if (s.type == SettingType::Number && !std::isfinite(v)) return false;
  if (s.min_open ? !(v > s.min) : !(v >= s.min)) return false;
  if (s.max_open ? !(v < s.max) : !(v <= s.max)) return false;
  return true;
}

std::vector<MethodInfo> make_registry() {
  std::vector<MethodInfo> all;
#define TESSERA_ADD_METHOD_INFO(id) all.push_back(id##_method_info());
  TESSERA_METHODS(TESSERA_ADD_METHOD_INFO)
#undef TESSERA_ADD_METHOD_INFO
  // An init setting offers the methods that can start TesseraQ, and none.
  std::vector<std::string> inits;
  for (const auto& m : all)
    if (m.can_init_tesseraq) inits.push_back(m.id);
  inits.emplace_back("none");
  for (auto& m : all)
    for (auto& s : m.settings)
      if (s.key == m.init_setting) s.choices = inits;
  return all;
}

}  // namespace

const Setting* MethodInfo::find(const std::string& key) const {
  for (const auto& s : settings)
    if (s.key == key) return &s;
  return nullptr;
}

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> all = make_registry();
  return all;
}

const MethodInfo* find_method(const std::string& id) {
  for (const auto& m : methods())
    if (m.id == id) return &m;
  return nullptr;
}

std::string method_ids(const std::string& separator) {
  std::string out;
  for (const auto& m : methods()) out += (out.empty() ? "" : separator) + m.id;
  return out;
}

const MethodInfo& method_info(const std::string& id) {
  if (const auto* m = find_method(id)) return *m;
  throw Error("unknown method \"" + id + "\" (available: " + method_ids() + ")");
}

// ---- declarations ---------------------------------------------------------------------------

Setting int_setting(std::string key, std::string cli, std::int64_t value, double min, double max, std::string help) {
  Setting s;
  s.key = std::move(key);
  s.cli = std::move(cli);
  s.type = SettingType::Int;
  s.default_value = value;
  s.min = min;
  s.max = max;
  s.help = std::move(help);
  return s;
}

Setting number_setting(std::string key, std::string cli, double value, double min, double max, std::string help) {
  Setting s = int_setting(std::move(key), std::move(cli), 0, min, max, std::move(help));
  s.type = SettingType::Number;
  s.default_value = value;
  return s;
}

Setting flag_setting(std::string key, std::string cli, bool value, std::string help) {
  Setting s = int_setting(std::move(key), std::move(cli), 0, 0, 1, std::move(help));
  s.type = SettingType::Flag;
  s.default_value = value;
  return s;
}

Setting choice_setting(std::string key, std::string cli, std::string value, std::vector<std::string> choices,
                       std::string help) {
  Setting s = int_setting(std::move(key), std::move(cli), 0, 0, 0, std::move(help));
  s.type = SettingType::Choice;
  s.default_value = std::move(value);
  s.choices = std::move(choices);
  return s;
}

Setting text_setting(std::string key, std::string cli, std::string value,
                     std::function<std::string(const std::string&)> check, std::string help) {
  Setting s = int_setting(std::move(key), std::move(cli), 0, 0, 0, std::move(help));
  s.type = SettingType::Text;
  s.default_value = std::move(value);
  s.check = std::move(check);
  return s;
}

Setting in_form(Setting s, std::string label) {
  s.in_form = true;
  s.label = std::move(label);
  return s;
}

// ---- values ---------------------------------------------------------------------------------

MethodSettings::MethodSettings() {
  for (const auto& m : methods())
    for (const auto& s : m.settings) values_[m.id][s.key] = s.default_value;
}

const MethodSettings::Value& MethodSettings::value(const std::string& method, const std::string& key,
                                                   SettingType type) const {
  const auto& info = method_info(method);
  const Setting* s = info.find(key);
  if (!s) throw Error("method " + method + " has no setting \"" + key + "\"");
  const bool text_like = type == SettingType::Text || type == SettingType::Choice;
  const bool s_text_like = s->type == SettingType::Text || s->type == SettingType::Choice;
  if (s->type != type && !(text_like && s_text_like))
    throw Error("setting " + method + "." + key + " is " + type_name(s->type) + ", not " + type_name(type));
  return values_.at(method).at(key);
}

MethodSettings::Value& MethodSettings::slot(const std::string& method, const std::string& key, SettingType type) {
  return const_cast<Value&>(std::as_const(*this).value(method, key, type));
}

std::int64_t MethodSettings::integer(const std::string& method, const std::string& key) const {
  return std::get<std::int64_t>(value(method, key, SettingType::Int));
}
double MethodSettings::number(const std::string& method, const std::string& key) const {
  return std::get<double>(value(method, key, SettingType::Number));
}
bool MethodSettings::flag(const std::string& method, const std::string& key) const {
  return std::get<bool>(value(method, key, SettingType::Flag));
}
const std::string& MethodSettings::text(const std::string& method, const std::string& key) const {
  return std::get<std::string>(value(method, key, SettingType::Text));
}

void MethodSettings::set(const std::string& method, const std::string& key, std::int64_t v) {
  const Setting* s = method_info(method).find(key);
  if (s && s->type == SettingType::Number)  // a whole number for a number setting
    slot(method, key, SettingType::Number) = static_cast<double>(v);
  else
    slot(method, key, SettingType::Int) = v;
}
void MethodSettings::set(const std::string& method, const std::string& key, double v) {
  slot(method, key, SettingType::Number) = v;
}
void MethodSettings::set(const std::string& method, const std::string& key, bool v) {
  slot(method, key, SettingType::Flag) = v;
}
void MethodSettings::set(const std::string& method, const std::string& key, const std::string& v) {
  slot(method, key, SettingType::Text) = v;
}

void MethodSettings::set_from_text(const std::string& method, const std::string& key, const std::string& text) {
  const Setting* s = method_info(method).find(key);
  if (!s) throw Error("method " + method + " has no setting \"" + key + "\"");
  const std::string what = method + "." + key + ": \"" + text + "\" is not ";
  switch (s->type) {
    case SettingType::Int: {
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) throw Error(what + "an integer");
      set(method, key, static_cast<std::int64_t>(v));
      break;
    }
    case SettingType::Number: {
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0') throw Error(what + "a number");
      set(method, key, v);
      break;
    }
    case SettingType::Flag:
      if (text == "true" || text == "on" || text == "1")
        set(method, key, true);
      else if (text == "false" || text == "off" || text == "0")
        set(method, key, false);
      else
        throw Error(what + "true or false");
      break;
    case SettingType::Choice:
    case SettingType::Text:
      set(method, key, text);
      break;
  }
}

std::string MethodSettings::to_text(const std::string& method, const std::string& key) const {
  const Setting* s = method_info(method).find(key);
  if (!s) throw Error("method " + method + " has no setting \"" + key + "\"");
  switch (s->type) {
    case SettingType::Int:
      return std::to_string(integer(method, key));
    case SettingType::Number:
      return shortest(number(method, key));
    case SettingType::Flag:
      return flag(method, key) ? "true" : "false";
    case SettingType::Choice:
    case SettingType::Text:
      break;
  }
  return text(method, key);
}

std::vector<SettingIssue> MethodSettings::issues() const {
  std::vector<SettingIssue> out;
  for (const auto& m : methods())
    for (const auto& s : m.settings) {
      const std::string path = m.id + "." + s.key;
      const std::string prefix = "run config: " + path;
      const Value& v = values_.at(m.id).at(s.key);
      switch (s.type) {
        case SettingType::Int: {
          const auto i = std::get<std::int64_t>(v);
          if (!in_range(s, static_cast<double>(i))) out.push_back({path, prefix + " " + range_text(s)});
          break;
        }
        case SettingType::Number:
          if (!in_range(s, std::get<double>(v))) out.push_back({path, prefix + " " + range_text(s)});
          break;
        case SettingType::Flag:
          break;
        case SettingType::Choice: {
          const auto& c = std::get<std::string>(v);
          if (std::find(s.choices.begin(), s.choices.end(), c) == s.choices.end())
            out.push_back({path, prefix + " must be " + join(s.choices, " or ") + ", got \"" + c + "\""});
          break;
        }
        case SettingType::Text: {
          const auto& t = std::get<std::string>(v);
          if (s.check)
            if (const auto why = s.check(t); !why.empty()) out.push_back({path, prefix + " \"" + t + "\": " + why});
          break;
        }
      }
    }
  return out;
}

void MethodSettings::write_section(const MethodInfo& m, nlohmann::json& section) const {
  section = nlohmann::json::object();
  for (const auto& s : m.settings) std::visit([&](const auto& v) { section[s.key] = v; }, values_.at(m.id).at(s.key));
}

void MethodSettings::read_section(const MethodInfo& m, const nlohmann::json& section, const std::string& source) {
  for (auto it = section.begin(); it != section.end(); ++it) {
    const Setting* s = m.find(it.key());
    if (!s) throw Error(source + ": unknown setting \"" + m.id + "." + it.key() + "\"");
    const nlohmann::json& v = it.value();
    const auto wrong = [&](const std::string& expected) {
      return Error(source + ": \"" + it.key() + "\" is " + v.dump() + ", expected " + expected);
    };
    switch (s->type) {
      case SettingType::Int:
        if (!v.is_number_integer()) throw wrong("an integer");
        if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
          throw wrong("an integer in " + std::to_string(std::numeric_limits<std::int64_t>::min()) + ".." +
                      std::to_string(std::numeric_limits<std::int64_t>::max()));
        set(m.id, s->key, v.get<std::int64_t>());
        break;
      case SettingType::Number:
        if (!v.is_number()) throw wrong("a number");
        set(m.id, s->key, v.get<double>());
        break;
      case SettingType::Flag:
        if (!v.is_boolean()) throw wrong(type_name(s->type));
        set(m.id, s->key, v.get<bool>());
        break;
      case SettingType::Choice:
      case SettingType::Text:
        if (!v.is_string()) throw wrong("a string");
        set(m.id, s->key, v.get<std::string>());
        break;
    }
  }
}

}  // namespace tessera::methods
