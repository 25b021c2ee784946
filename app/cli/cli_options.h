#pragma once
// Minimal `--name value` / `--flag` parser for the tessera CLI. Unknown options are errors, so a
// typo never silently falls back to a default.
#include <map>
#include <set>
#include <string>
#include <vector>

namespace tessera::cli {

class CliOptions {
 public:
  // `values`: options that take a value; `flags`: options that do not.
  CliOptions(const std::vector<std::string>& args, const std::set<std::string>& values,
             const std::set<std::string>& flags);

  bool has(const std::string& name) const { return values_.count(name) || flags_.count(name); }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::string require(const std::string& name) const;  // throws "--name is required"
  long long get_int(const std::string& name, long long fallback) const;
  // For int settings: a value outside int's range is an error, never truncated (--wbits 4294967298
  // must not become 2).
  int get_int32(const std::string& name, int fallback) const;
  double get_double(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return flags_.count(name) != 0; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
};

}  // namespace tessera::cli
