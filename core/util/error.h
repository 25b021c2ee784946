#pragma once
// One exception type for everything the user can get wrong (files, settings, data). Messages name
// the file, tensor or setting at fault and say what was expected, so the CLI can print them as-is
// and the GUI can show them in a dialog.
#include <stdexcept>
#include <string>

namespace tessera {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Raised when a StopToken was triggered; callers treat it as "cancelled", not as a failure.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled by the user") {}
};

}  // namespace tessera
