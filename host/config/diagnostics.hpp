// Config problems. Validation collects every problem it finds into Diagnostics and throws one
// ConfigError at the end, so a user fixes a config in one pass instead of one error per run.
#pragma once

#include "config/toml_value.hpp"
#include "core/errors.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace ssld::host {

struct Diagnostic {
  SourcePlace place;
  std::string message;
};

class Diagnostics {
 public:
  void add(SourcePlace place, std::string message);
  bool empty() const { return items_.empty(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  // Throws ConfigError with every problem so far, sorted by file and line; no-op when empty.
  void throw_if_any() const;

 private:
  std::vector<Diagnostic> items_;
};

// The config layer's one error type: one or more problems, each with file:line:column.
class ConfigError : public HostError {
 public:
  explicit ConfigError(std::vector<Diagnostic> problems);
  ConfigError(SourcePlace place, const std::string& message);
  const std::vector<Diagnostic>& problems() const { return problems_; }

 private:
  std::vector<Diagnostic> problems_;
};

// The candidate nearest to `word` by edit distance, or "" when none is close enough to be a
// plausible typo. Used for every "did you mean" in ssld.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// ", did you mean 'x'?" or "" — appended to unknown-name messages.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace ssld::host
