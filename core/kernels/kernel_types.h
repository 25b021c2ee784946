#pragma once
// Element types the CUDA kernels of core/kernels read and write (plain enums: no libtorch here).

namespace tessera::kernels {

enum class Dtype { F32, BF16, F16 };

}  // namespace tessera::kernels
