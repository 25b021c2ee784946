#pragma once
// The 16 levels of llama.cpp's IQ4_NL (ggml-common.h kvalues_iq4nl): code q stands for
// d * kIq4NlLevels[q] (quant/codebook_grid.h quantizes onto them, formats/gguf_blocks.h writes them).
#include <array>
#include <cstdint>

namespace tessera::quant {

inline constexpr std::array<std::int8_t, 16> kIq4NlLevels = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                             1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace tessera::quant
