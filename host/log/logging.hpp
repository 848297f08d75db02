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

// The one line at the bottom of stderr that a progress bar redraws in place. Log messages to
// stderr clear it first and draw it again after themselves, so a warning during an epoch lands
// on a line of its own instead of on the bar's.
namespace status_line {
void show(const std::string& text);  // draws (or redraws) the line, without a newline
void end();                          // ends the line with a newline; later output starts below it
}  // namespace status_line

}  // namespace ssld::host
