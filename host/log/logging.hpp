// Logging setup: spdlog to stderr, level from --log-level / -q / -v. Run folders add a file
// sink once runs exist.
#pragma once

#include <string>

namespace ssld::host {

struct LogOptions {
  std::string level = "info";
  bool quiet = false;    // -q: warnings and errors only
  bool verbose = false;  // -v: debug
};

void configure_logging(const LogOptions& options);

}  // namespace ssld::host
