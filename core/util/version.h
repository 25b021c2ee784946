#pragma once
namespace tessera {
// Recorded in run manifests and printed by `tessera --version`.
inline constexpr const char* kVersion = "0.1.0";
}  // namespace tessera
