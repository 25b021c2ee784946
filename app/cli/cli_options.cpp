#include "cli/cli_options.h"

#include <limits>

#include "util/error.h"

namespace tessera::cli {

CliOptions::CliOptions(const std::vector<std::string>& args, const std::set<std::string>& values,
                       const std::set<std::string>& flags) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) throw Error("unexpected argument \"" + a + "\"");
    std::string name = a.substr(2), value;
    const auto eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (flags.count(name)) {
      if (inline_value) throw Error("--" + name + " takes no value");
      flags_.insert(name);
    } else if (values.count(name)) {
      if (!inline_value) {
        if (i + 1 >= args.size()) throw Error("--" + name + " needs a value");
        value = args[++i];
      }
      values_[name] = value;
    } else {
      throw Error("unknown option --" + name + " (see tessera --help)");
    }
  }
}

std::string CliOptions::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string CliOptions::require(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) throw Error("--" + name + " is required");
  return it->second;
}

long long CliOptions::get_int(const std::string& name, long long fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  try {
    std::size_t used = 0;
    long long v = std::stoll(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("trailing");
    return v;
  } catch (const std::exception&) {
    throw Error("--" + name + " expects an integer, got \"" + it->second + "\"");
  }
}

int CliOptions::get_int32(const std::string& name, int fallback) const {
  const auto v = get_int(name, fallback);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    throw Error("--" + name + " " + std::to_string(v) + " is out of range");
  return static_cast<int>(v);
}

double CliOptions::get_double(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  try {
    std::size_t used = 0;
    double v = std::stod(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("trailing");
    return v;
  } catch (const std::exception&) {
    throw Error("--" + name + " expects a number, got \"" + it->second + "\"");
  }
}

}  // namespace tessera::cli
