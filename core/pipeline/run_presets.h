#pragma once
// Named run presets (resources/presets/*.json): partial run configs after the paper's settings.
#include <string>
#include <vector>

#include "pipeline/run_config.h"

namespace tessera::pipeline {

// The folder that holds the presets: TESSERA_PRESETS_DIR if set, else the source tree's
// resources/presets (compiled in). Throws naming the places it looked when there is none.
std::string presets_dir();
std::vector<std::string> preset_names();  // sorted, without ".json"
// `name_or_path`: a preset name ("W2A16g128") or a path to a JSON file; applied over `base`.
RunConfig apply_preset(const std::string& name_or_path, const RunConfig& base);

}  // namespace tessera::pipeline
