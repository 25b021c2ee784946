// The method registry (methods/method_registry.h): every method declares what the CLI, the GUI and
// run.json need, with help, defaults and ranges, and has a test; the settings store checks types
// and names the setting of each problem; a run recorded before the registry existed still loads
// with the same bytes and the same fingerprint (so it resumes and exports).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <variant>

#include "cli_runner.h"
#include "methods/method_registry.h"
#include "pipeline/quantization_run.h"
#include "pipeline/run_config.h"
#include "pipeline/run_presets.h"
#include "rundir/run_directory.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kTests = TESSERA_TEST_SOURCE_DIR;

bool is_identifier(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') return false;
  return true;
}

// The options of quantize/plan that are not a method's (app/cli/main.cpp).
const std::set<std::string> kGeneralOptions = {"model",  "tokenizer", "calib",  "out",     "method",  "wbits",
                                               "group",  "target",    "abits",  "samples", "seq-len", "seed",
                                               "device", "batch",     "config", "eval",    "preset",  "sym",
                                               "resume", "force",     "json",   "verbose", "quiet"};

}  // namespace

class TestMethodRegistry : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  // Every method: an id usable in methods/method_list.h, a label, a colour, help; every setting:
  // help, a default of its type inside its range (or among its choices, or accepted by its check),
  // a unique CLI option, a label when the form shows it.
  void everyMethodDeclaresItselfAndItsSettings() {
    QVERIFY(methods::methods().size() >= 4);
    std::set<std::string> ids, options;
    for (const auto& m : methods::methods()) {
      const std::string who = "method \"" + m.id + "\"";
      QVERIFY2(is_identifier(m.id), who.c_str());
      QVERIFY2(ids.insert(m.id).second, (who + " is registered twice").c_str());
      QVERIFY2(!m.label.empty(), (who + " has no label").c_str());
      QVERIFY2(!m.help.empty(), (who + " has no help").c_str());
      QVERIFY2(m.colour != 0 && m.colour <= 0xffffff, (who + " has no colour").c_str());
      QVERIFY2(m.init_setting.empty() || m.find(m.init_setting), (who + ": its init_setting is not a setting").c_str());
      std::set<std::string> keys;
      for (const auto& s : m.settings) {
        const std::string what = m.id + "." + s.key;
        QVERIFY2(!s.key.empty() && keys.insert(s.key).second, (what + ": empty or repeated key").c_str());
        QVERIFY2(!s.help.empty(), (what + " has no help").c_str());
        QVERIFY2(!s.in_form || !s.label.empty(), (what + " is in the form without a label").c_str());
        if (!s.cli.empty()) {
          QVERIFY2(options.insert(s.cli).second, (what + ": --" + s.cli + " is another setting's option").c_str());
          QVERIFY2(!kGeneralOptions.count(s.cli), (what + ": --" + s.cli + " is a general option").c_str());
        }
        QVERIFY2(s.cli_also_sets.empty() || m.find(s.cli_also_sets), (what + ": cli_also_sets is unknown").c_str());
        switch (s.type) {
          case methods::SettingType::Int:
          case methods::SettingType::Number: {
            const bool is_int = s.type == methods::SettingType::Int;
            QVERIFY2(is_int ? std::holds_alternative<std::int64_t>(s.default_value)
                            : std::holds_alternative<double>(s.default_value),
                     (what + ": the default is not of the setting's type").c_str());
            QVERIFY2(!std::isnan(s.min) && !std::isnan(s.max) && s.min < s.max, (what + " has no range").c_str());
            const double d = is_int ? static_cast<double>(std::get<std::int64_t>(s.default_value))
                                    : std::get<double>(s.default_value);
            const bool above = s.min_open ? d > s.min : d >= s.min, below = s.max_open ? d < s.max : d <= s.max;
            QVERIFY2(above && below, (what + ": the default is outside the range").c_str());
            break;
          }
          case methods::SettingType::Flag:
            QVERIFY2(std::holds_alternative<bool>(s.default_value), (what + ": the default is not a flag").c_str());
            break;
          case methods::SettingType::Choice: {
            QVERIFY2(std::holds_alternative<std::string>(s.default_value), (what + ": default not text").c_str());
            const auto& d = std::get<std::string>(s.default_value);
            QVERIFY2(std::find(s.choices.begin(), s.choices.end(), d) != s.choices.end(),
                     (what + ": the default is not among the choices").c_str());
            break;
          }
          case methods::SettingType::Text:
            QVERIFY2(std::holds_alternative<std::string>(s.default_value), (what + ": default not text").c_str());
            QVERIFY2(static_cast<bool>(s.check), (what + " has no check (its range)").c_str());
            QVERIFY2(s.check(std::get<std::string>(s.default_value)).empty(), (what + ": default refused").c_str());
            break;
        }
      }
    }
    // The init choices are the methods that can initialise TesseraQ, and none.
    for (const auto& m : methods::methods()) {
      if (m.init_setting.empty()) continue;
      for (const auto& choice : m.find(m.init_setting)->choices)
        QVERIFY2(choice == "none" || methods::method_info(choice).can_init_tesseraq, choice.c_str());
    }
    QCOMPARE(methods::MethodSettings().issues().size(), std::size_t(0));
    TESSERA_VERIFY_THROWS_WITH(methods::method_info("gptq"), "unknown method \"gptq\"");
  }

  // Every method has a test: a test source (tests/**/test_*.cpp, this one aside) that names its id
  // as a string, i.e. runs or configures it.
  void everyMethodHasATest() {
    std::string sources;
    for (const auto& e : fs::recursive_directory_iterator(kTests)) {
      const auto name = e.path().filename().string();
      if (e.is_regular_file() && name.rfind("test_", 0) == 0 && e.path().extension() == ".cpp" &&
          name != "test_method_registry.cpp")
        sources += tessera_test::file_bytes(e.path());
    }
    QVERIFY(!sources.empty());
    for (const auto& m : methods::methods())
      QVERIFY2(sources.find("\"" + m.id + "\"") != std::string::npos,
               ("no test under tests/ names the method \"" + m.id + "\" (see docs/adding-a-method.md)").c_str());
  }

  // Types are checked when set, ranges and choices by issues(), each naming its run.json key.
  void settingsAreTypedAndIssuesNameTheirSetting() {
    pipeline::RunConfig c;
    c.model = "m.bin";
    c.calib = "c.txt";
    QCOMPARE(c.issues().size(), std::size_t(0));
    for (const auto& m : methods::methods())
      for (const auto& s : m.settings) {
        // Each value survives its text form (the CLI's and the form's).
        auto copy = c.settings;
        copy.set_from_text(m.id, s.key, c.settings.to_text(m.id, s.key));
        QCOMPARE(copy.to_text(m.id, s.key), c.settings.to_text(m.id, s.key));
        // A value of the wrong type is refused at once.
        if (s.type == methods::SettingType::Flag)
          TESSERA_VERIFY_THROWS_WITH(copy.set(m.id, s.key, std::string("yes")), "is true or false");
        else
          TESSERA_VERIFY_THROWS_WITH(copy.set(m.id, s.key, true), m.id + "." + s.key);
        // Below the range: one issue, for that key.
        if (s.type == methods::SettingType::Int || s.type == methods::SettingType::Number) {
          if (!std::isfinite(s.min)) continue;
          if (s.type == methods::SettingType::Int)
            copy.set(m.id, s.key, static_cast<std::int64_t>(s.min) - (s.min_open ? 0 : 1));
          else
            copy.set(m.id, s.key, s.min_open ? s.min : s.min - 1);
          const auto issues = copy.issues();
          QCOMPARE(issues.size(), std::size_t(1));
          QCOMPARE(issues.front().key, m.id + "." + s.key);
        }
      }
    TESSERA_VERIFY_THROWS_WITH(c.settings.integer("tesseraq", "lr"), "is a number, not an integer");
    TESSERA_VERIFY_THROWS_WITH(c.settings.integer("tesseraq", "nope"), "has no setting \"nope\"");
    TESSERA_VERIFY_THROWS_WITH(c.settings.set_from_text("tesseraq", "steps", "1.5"), "is not an integer");
    c.settings.set("tesseraq", "scale_wd", 0);  // a whole number for a number setting stays a number
    QVERIFY(c.to_json_text().find("\"scale_wd\": 0.0") != std::string::npos);

    // Several problems at once, each with its key (what the run panel outlines).
    c.weight.bits = 9;
    c.samples = 0;
    c.settings.set("tesseraq", "schedule", "0.2,0.5");
    c.settings.set("omniquant", "let", "maybe");
    std::set<std::string> keys;
    for (const auto& issue : c.issues()) keys.insert(issue.key);
    QVERIFY((keys == std::set<std::string>{"wbits", "samples", "tesseraq.schedule", "omniquant.let"}));
    TESSERA_VERIFY_THROWS_WITH(c.validate(), "weight bits");
    c.weight.bits = 4;
    c.weight.group_size = -3;
    QCOMPARE(c.issues().front().key, std::string("group"));

    // Unknown keys inside a method's section are refused like unknown top-level ones.
    TESSERA_VERIFY_THROWS_WITH(pipeline::RunConfig::from_json_text(R"({"tesseraq": {"stepz": 3}})", "run.json"),
                               "unknown setting \"tesseraq.stepz\"");
  }

  // A run made before the registry (tests/data/gpu-run-stories260K, CUDA, TesseraQ): its run.json
  // is rewritten byte for byte from the parsed config, its identity is the recorded one (resume
  // compares exactly that), and it reads as a finished run (what export and eval start from).
  void recordedRunKeepsItsBytesAndFingerprint() {
    const fs::path dir = kTests / "data" / "gpu-run-stories260K";
    const std::string text = tessera_test::file_bytes(dir / "run.json");
    const json manifest = json::parse(text);
    const auto config = pipeline::RunConfig::from_json_text(manifest["config"].dump(), "run.json");
    QCOMPARE(config.identity_json(), manifest["config_identity"].get<std::string>());
    QCOMPARE(config.to_json_text(), manifest["config"].dump(2) + "\n");
    json again = manifest;
    again["config"] = json::parse(config.to_json_text());
    again["config_identity"] = config.identity_json();
    QVERIFY2(again.dump(2) + "\n" == text, "run.json written again differs from the recorded file");
    // Resume: the fingerprint of the same inputs has no differences.
    rundir::RunFingerprint recorded, now;
    recorded.model_sha256 = now.model_sha256 = manifest["model_sha256"].get<std::string>();
    recorded.calibration_sha256 = now.calibration_sha256 = manifest["calibration_sha256"].get<std::string>();
    recorded.code_version = now.code_version = manifest["code_version"].get<std::string>();
    recorded.config = manifest["config_identity"].get<std::string>();
    now.config = config.identity_json();
    QCOMPARE(recorded.differences(now), std::string());
    auto changed = config;
    changed.settings.set("tesseraq", "steps", 101);
    now.config = changed.identity_json();
    QVERIFY(recorded.differences(now).rfind("settings: ", 0) == 0);
    const auto read = pipeline::read_run_manifest(dir.string(), /*require_finished=*/true);
    QCOMPARE(read.config.identity_json(), config.identity_json());
    QCOMPARE(read.config.settings.integer("tesseraq", "steps"), std::int64_t(100));
    QCOMPARE(read.config.settings.text("tesseraq", "init"), std::string("awq"));
    // On the CPU the identity leaves train_dtype out, as it did before the setting existed.
    auto cpu = config;
    cpu.device = "cpu";
    QVERIFY(cpu.identity_json().find("train_dtype") == std::string::npos);
    // Every preset still loads and validates.
    for (const auto& name : pipeline::preset_names()) {
      auto c = pipeline::apply_preset(name, pipeline::RunConfig());
      c.model = "m.bin";
      c.calib = "c.txt";
      const auto issues = c.issues();
      QVERIFY2(issues.empty(), (name + ": " + (issues.empty() ? "" : issues.front().message)).c_str());
    }
  }

  // The CLI's help lists every declared option, and the quantize options accept them.
  void cliOptionsComeFromTheDeclarations() {
    const auto help = tessera_test::run_cli("--help");
    QCOMPARE(help.status, 0);
    for (const auto& m : methods::methods()) {
      QVERIFY2(help.out.find(m.id + " ") != std::string::npos, m.id.c_str());
      for (const auto& s : m.settings)
        if (!s.cli.empty())
          QVERIFY2(help.out.find("--" + s.cli + " ") != std::string::npos, ("--" + s.cli + " not in --help").c_str());
    }
  }
};

TESSERA_TEST_MAIN(TestMethodRegistry, everyMethodDeclaresItselfAndItsSettings, everyMethodHasATest,
                  settingsAreTypedAndIssuesNameTheirSetting, recordedRunKeepsItsBytesAndFingerprint,
                  cliOptionsComeFromTheDeclarations)
#ifdef TESSERA_TEST_WITH_QT
#include "test_method_registry.moc"
#endif
