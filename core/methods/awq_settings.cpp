// AWQ's declaration and settings (methods/method_registry.h); the method is methods/awq_method.cpp.
#include <limits>

#include "methods/method_registry.h"

namespace tessera::methods {

MethodInfo awq_method_info() {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr double kIntMax = std::numeric_limits<int>::max();
  MethodInfo m;
  m.id = "awq";
  m.label = "AWQ";
  m.colour = 0xe67e22;
  m.can_init_tesseraq = true;  // AWQ scales + LLMC v1 clip
  m.transforms_weights = true;
  m.memory = MemoryProfile::Awq;
  m.section = SectionPolicy::AlwaysWrittenAndInIdentity;
  m.help = "activation-aware per-channel scales searched on an alpha grid, then a clip search and RTN";
  m.settings = {
      int_setting("grid", "awq-grid", 20, 1, kIntMax, "alpha grid points 0, 1/n, ..., 1 of the scale search"),
      flag_setting("clip", "awq-clip", true, "LLMC's asymmetric clip search after the scaling"),
      int_setting("clip_grid", "awq-clip-grid", 20, 1, kIntMax, "clip ratios step by 1/clip_grid"),
      number_setting("max_shrink", "awq-max-shrink", 0.5, 0, 1,
                     "clip ratios go from 1 down to 1 - max_shrink (exclusive)"),
      int_setting("clip_tokens", "awq-clip-tokens", 512, 1, kInf, "calibration tokens sampled by the clip search"),
  };
  m.settings[3].max_open = true;
  return m;
}

}  // namespace tessera::methods
