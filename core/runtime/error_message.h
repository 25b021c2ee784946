#pragma once
// The one line a user sees for an exception that reached the CLI or the worker's job: Tessera's
// own errors as they are; libtorch's without their C++ backtrace (and an out-of-memory error with
// what to do about it); std::filesystem's as "<operation> <path>: <reason>"; std::bad_alloc as
// host memory exhausted. Torch-free header: the CLI and the worker include it.
#include <exception>
#include <string>

namespace tessera::runtime {

std::string error_message(const std::exception& e);

}  // namespace tessera::runtime
