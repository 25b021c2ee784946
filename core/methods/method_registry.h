#pragma once
// The quantization methods and their settings, declared once (docs/adding-a-method.md). Each method
// describes itself in methods/<id>_settings.cpp: id, label, plot colour, iteration noun, what it
// can do, and its settings (run.json key, CLI option, type, default, range or choices, help,
// whether the run panel shows it). The CLI options of `tessera quantize`, the run panel's form,
// the method sections of run.json and their validation are all made from these declarations.
//
// Torch-free: the GUI (tessera_base) uses it. The torch side, which makes the BlockMethod of an id,
// is pipeline::make_block_method (methods/method_factory.cpp).
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <variant>
#include <vector>

namespace tessera::methods {

enum class SettingType { Int, Number, Flag, Choice, Text };

// One setting of a method: what run.json, the CLI and the GUI need to know about it.
struct Setting {
  std::string key;  // inside the method's run.json section ("lr" of "tesseraq")
  std::string cli;  // quantize/plan option without "--" ("scale-lr"); "" = none
  SettingType type = SettingType::Int;
  std::variant<std::int64_t, double, bool, std::string> default_value;
  // Int and Number: the allowed range; an open end excludes the bound itself. Infinite = unbounded.
  double min = 0, max = 0;
  bool min_open = false, max_open = false;
  // Choice: the allowed values (the registry fills an init setting's); Text: the form's suggestions.
  std::vector<std::string> choices;
  // Text: "" when the value is fine, else why not (without the "run config: <key>" prefix).
  std::function<std::string(const std::string&)> check;
  std::string help;         // the CLI's help line and the form's tooltip
  std::string label;        // the form's row label
  bool in_form = false;     // the run panel shows it
  bool in_identity = true;  // false: reporting only (a run resumes whatever its value)
  std::string min_text;     // Int in the form: the text shown for the lowest value ("auto (...)")
  // CLI: the option also sets this setting of the same method, unless that one's own option is
  // given (--lr sets both TesseraQ learning rates unless --scale-lr is given).
  std::string cli_also_sets;
};

// How the memory forecast (pipeline/memory_forecast.cpp) models a method's block phase.
enum class MemoryProfile { WeightsOnly, Awq, Omniquant, Tesseraq };

// Where the method's section goes in run.json. Methods added after the first four write it only
// for runs that use them; the first four always did, and their runs must keep their bytes.
enum class SectionPolicy { WhenUsed, AlwaysWritten, AlwaysWrittenAndInIdentity };

struct MethodInfo {
  std::string id;                   // run.json "method", --method (a C identifier: methods/method_list.h)
  std::string label;                // the run panel's method menu
  std::uint32_t colour = 0;         // 0xRRGGBB of its curves and table rows
  std::string iteration_noun;       // what its progress iterations are ("epoch", "PAR iteration"); "" = none
  bool can_init_tesseraq = false;   // a choice of TesseraQ's init (methods/tesseraq_method.cpp runs it)
  bool transforms_weights = false;  // changes the float weights before rounding (not plain RTN)
  bool uses_train_dtype = false;    // its matmuls run in the run's train_dtype (part of its identity)
  MemoryProfile memory = MemoryProfile::WeightsOnly;
  SectionPolicy section = SectionPolicy::WhenUsed;
  // The Choice setting naming the method whose result this one starts from ("init"): that method's
  // settings then belong to the run too. "" = none.
  std::string init_setting;
  std::string help;  // one line: what the method does (CLI help)
  std::vector<Setting> settings;

  const Setting* find(const std::string& key) const;
};

// Every registered method, in the order of methods/method_list.h.
const std::vector<MethodInfo>& methods();
const MethodInfo* find_method(const std::string& id);
const MethodInfo& method_info(const std::string& id);  // throws naming the ids when unknown
std::string method_ids(const std::string& separator = ", ");

// A problem with one setting; `key` is its run.json path ("tesseraq.lr", "wbits").
struct SettingIssue {
  std::string key;
  std::string message;
};

// The values of every method's settings, starting at their defaults. set() checks the type (an
// Int takes only whole numbers); issues() checks ranges, choices and texts.
class MethodSettings {
 public:
  MethodSettings();

  std::int64_t integer(const std::string& method, const std::string& key) const;
  double number(const std::string& method, const std::string& key) const;
  bool flag(const std::string& method, const std::string& key) const;
  const std::string& text(const std::string& method, const std::string& key) const;  // Text and Choice

  void set(const std::string& method, const std::string& key, std::int64_t value);
  void set(const std::string& method, const std::string& key, int value) {
    set(method, key, static_cast<std::int64_t>(value));
  }
  void set(const std::string& method, const std::string& key, double value);
  void set(const std::string& method, const std::string& key, bool value);
  void set(const std::string& method, const std::string& key, const std::string& value);
  void set(const std::string& method, const std::string& key, const char* value) {
    set(method, key, std::string(value));
  }
  // Sets a value given as text (a CLI option, a form field); throws naming the setting when the text
  // is not of its type.
  void set_from_text(const std::string& method, const std::string& key, const std::string& text);
  // The value as the form and the CLI write it (numbers shortest, flags true/false).
  std::string to_text(const std::string& method, const std::string& key) const;

  std::vector<SettingIssue> issues() const;

  // The method's section of run.json (keys sorted, integers as integers, numbers as floats).
  void write_section(const MethodInfo& m, nlohmann::json& section) const;
  // Reads the keys present in `section` (an object); unknown keys and wrong types throw.
  void read_section(const MethodInfo& m, const nlohmann::json& section, const std::string& source);

 private:
  using Value = std::variant<std::int64_t, double, bool, std::string>;
  const Value& value(const std::string& method, const std::string& key, SettingType type) const;
  Value& slot(const std::string& method, const std::string& key, SettingType type);
  std::map<std::string, std::map<std::string, Value>> values_;
};

// For methods/<id>_settings.cpp: a setting's declaration, by type.
Setting int_setting(std::string key, std::string cli, std::int64_t value, double min, double max, std::string help);
Setting number_setting(std::string key, std::string cli, double value, double min, double max, std::string help);
Setting flag_setting(std::string key, std::string cli, bool value, std::string help);
Setting choice_setting(std::string key, std::string cli, std::string value, std::vector<std::string> choices,
                       std::string help);
Setting text_setting(std::string key, std::string cli, std::string value,
                     std::function<std::string(const std::string&)> check, std::string help);
// Shown in the run panel with `label`.
Setting in_form(Setting s, std::string label);

}  // namespace tessera::methods
