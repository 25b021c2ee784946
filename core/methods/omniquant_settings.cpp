// OmniQuant's declaration and settings (methods/method_registry.h); the method is
// methods/omniquant_method.cpp. Defaults of the official code (OmniQuant, arXiv 2308.13137: main.py
// and scripts/).
#include "methods/omniquant_settings.h"

#include <limits>

#include "methods/method_registry.h"

namespace tessera::methods {

MethodInfo omniquant_method_info() {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  MethodInfo m;
  m.id = "omniquant";
  m.label = "OmniQuant";
  m.colour = 0x8e44ad;
  m.iteration_noun = "epoch";
  m.can_init_tesseraq = true;  // its LWC clip logits
  m.transforms_weights = true;
  m.memory = MemoryProfile::Omniquant;
  m.section = SectionPolicy::AlwaysWritten;
  m.help = "learnable weight clipping (and, with activation bits, the learnable equivalent transformation)";
  auto epochs = in_form(
      int_setting("epochs", "epochs", 0, 0, kInf, "training epochs per block; 0 = auto (40 at 2 bits, else 20)"),
      "OmniQuant epochs");
  epochs.min_text = "auto (40 at 2 bits, else 20)";
  m.settings = {
      epochs,
      in_form(number_setting("lwc_lr", "lwc-lr", 1e-2, 0, kInf, "AdamW learning rate of the clipping logits"),
              "OmniQuant LWC lr"),
      choice_setting("let", "let", "auto", {"auto", "on", "off"},
                     "learnable equivalent transformation: auto = on with activation bits"),
      number_setting("let_lr", "let-lr", 5e-3, 0, kInf, "AdamW learning rate of the LET scales"),
      number_setting("alpha", "let-alpha", 0.5, 0, 1, "LET scale init a^alpha / w^(1-alpha)"),
      choice_setting("aug_loss", "aug-loss", "auto", {"auto", "on", "off"},
                     "add the FP block's output on the quantized inputs to the loss: auto = on at 2 bits"),
      int_setting("batch", "oq-batch", 1, 1, kInf, "calibration samples per step (fixed order)"),
  };
  for (auto* s : {&m.settings[1], &m.settings[3]}) s->min_open = true;
  m.settings[4].min_open = m.settings[4].max_open = true;
  return m;
}

std::int64_t omniquant_epochs(const pipeline::RunConfig& run) {
  const auto e = run.settings.integer("omniquant", "epochs");
  return e > 0 ? e : (run.weight.bits <= 2 ? 40 : 20);
}

bool omniquant_let(const pipeline::RunConfig& run) {
  const auto& v = run.settings.text("omniquant", "let");
  return v == "on" || (v == "auto" && run.act_bits > 0);
}

bool omniquant_aug_loss(const pipeline::RunConfig& run) {
  const auto& v = run.settings.text("omniquant", "aug_loss");
  return v == "on" || (v == "auto" && run.weight.bits <= 2);
}

}  // namespace tessera::methods
