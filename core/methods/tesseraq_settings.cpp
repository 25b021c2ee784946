// TesseraQ's declaration and settings (methods/method_registry.h); the method is
// methods/tesseraq_method.cpp (TesseraQ, arXiv 2410.19103).
#include "methods/tesseraq_settings.h"

#include <limits>
#include <sstream>

#include "methods/method_registry.h"
#include "util/error.h"

namespace tessera::methods {

std::string par_schedule_problem(const std::string& schedule) {
  try {
    par_thresholds(schedule);
    return {};
  } catch (const Error& e) {
    return e.what();
  }
}

std::vector<double> par_thresholds(const std::string& schedule) {
  // The 20- and 10-step lists of the official configs (configs/quantization/*.yml); the paper
  // calls them handcrafted thresholds.
  if (schedule == "paper20")
    return {0.8,  0.65, 0.5,  0.43, 0.38, 0.34, 0.3,  0.27, 0.24, 0.21,
            0.18, 0.15, 0.12, 0.10, 0.08, 0.06, 0.04, 0.02, 0.01, 0.005};
  if (schedule == "paper10") return {0.75, 0.5, 0.375, 0.25, 0.125, 0.09, 0.06, 0.04, 0.02, 0.005};
  std::vector<double> out;
  std::stringstream ss(schedule);
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
      throw Error("\"" + t + "\" is not a number (use paper20, paper10 or soft fractions like 0.5,0.2,0)");
    if (!(v >= 0 && v < 1)) throw Error("soft fraction " + t + " is outside [0, 1)");
    if (!out.empty() && v > out.back()) throw Error("soft fractions must not increase (" + t + ")");
    out.push_back(v);
  }
  if (out.empty()) throw Error("no soft fractions (use paper20, paper10 or a comma list)");
  return out;
}

std::vector<double> par_thresholds(const pipeline::RunConfig& run) {
  const auto& schedule = run.settings.text("tesseraq", "schedule");
  try {
    return par_thresholds(schedule);
  } catch (const Error& e) {
    throw Error("run config: tesseraq.schedule \"" + schedule + "\": " + e.what());
  }
}

MethodInfo tesseraq_method_info() {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  MethodInfo m;
  m.id = "tesseraq";
  m.label = "TesseraQ (PAR + DST)";
  m.colour = 0x1f6fb4;
  m.iteration_noun = "PAR iteration";
  m.transforms_weights = true;
  m.uses_train_dtype = true;
  m.memory = MemoryProfile::Tesseraq;
  m.section = SectionPolicy::AlwaysWritten;
  m.init_setting = "init";
  m.help = "progressive adaptive rounding and dequantization scale tuning, from an init";
  auto schedule =
      in_form(text_setting("schedule", "par-schedule", "paper20", par_schedule_problem,
                           "PAR soft fractions: paper20, paper10, or a non-increasing comma list in [0, 1)"),
              "PAR schedule");
  schedule.choices = {"paper20", "paper10", "0.5,0.2,0"};  // the form's suggestions
  auto lr = in_form(number_setting("lr", "lr", 1e-3, 0, kInf,
                                   "Adam learning rate of the rounding variables (also of the DST scales unless "
                                   "--scale-lr is given)"),
                    "Rounding lr");
  lr.cli_also_sets = "scale_lr";
  auto log_every = int_setting("log_every", "log-every", 10, 1, kInf, "a step-loss event every n steps");
  log_every.in_identity = false;  // reporting only
  m.settings = {
      // Its choices are the methods that can initialise TesseraQ, and none (filled by the registry).
      in_form(
          choice_setting("init", "init", "awq", {}, "the starting point: AWQ scales + clip, OmniQuant's LWC, or none"),
          "Initialisation"),
      schedule,
      in_form(int_setting("steps", "par-steps", 250, 0, kInf, "Adam steps per PAR iteration"), "Steps / iteration"),
      int_setting("batch", "par-batch", 4, 1, kInf, "calibration samples per step"),
      lr,
      in_form(number_setting("scale_lr", "scale-lr", 1e-3, 0, kInf, "Adam learning rate of the DST scales"),
              "DST scale lr"),
      number_setting("scale_wd", "scale-wd", 1e-4, 0, kInf, "DST weight decay (coupled L2)"),
      log_every,
  };
  m.settings[4].min_open = m.settings[5].min_open = true;
  return m;
}

}  // namespace tessera::methods
