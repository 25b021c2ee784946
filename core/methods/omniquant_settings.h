#pragma once
// OmniQuant's settings as the method uses them (declared in methods/omniquant_settings.cpp).
#include <cstdint>

#include "pipeline/run_config.h"

namespace tessera::methods {

std::int64_t omniquant_epochs(const pipeline::RunConfig& run);  // "epochs" with 0 = auto resolved
bool omniquant_let(const pipeline::RunConfig& run);             // "let" resolved
bool omniquant_aug_loss(const pipeline::RunConfig& run);        // "aug_loss" resolved

}  // namespace tessera::methods
