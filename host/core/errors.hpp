// ssld's exit statuses and the host's error hierarchy. A user's mistake or a bad input is an
// ssld::Error (the SDK's type, which plugins throw too) and exits 2; the host's own errors
// derive from HostError, which carries the exit status when it is another one (Interrupted: 3).
// Anything else that escapes a command is a bug: exit 1, "unexpected failure".
#pragma once

#include <ssld/error.hpp>

#include <exception>
#include <string>

namespace ssld::host {

enum ExitStatus : int {
  kExitSuccess = 0,
  kExitInternalError = 1,  // a bug: an exception that is not an ssld::Error
  kExitUserError = 2,      // a config, plugin, data or option problem the user can fix
  kExitInterrupted = 3,    // stopped by a signal after saving its state: run again to resume
  kExitSweepRunsFailed = 4,  // `ssld sweep`: every run ended, some failed (see the manifest)
};

class HostError : public ssld::Error {
 public:
  explicit HostError(const std::string& message, ExitStatus exit_status = kExitUserError)
      : ssld::Error(message), exit_status_(exit_status) {}
  ExitStatus exit_status() const { return exit_status_; }

 private:
  ExitStatus exit_status_;
};

// The data layer's errors: a sample that cannot be read or decoded, a batch that cannot be
// assembled, a loader that stalls. The message names the file or sample.
class DataError : public HostError {
 public:
  explicit DataError(const std::string& message) : HostError(message) {}
};

// The plugin layer's errors: a library that cannot be loaded, is refused by the handshake, fails
// to register, or clashes with another. The message names the file.
class PluginError : public HostError {
 public:
  explicit PluginError(const std::string& message) : HostError(message) {}
};

// (ConfigError, with the place of each problem, is in config/diagnostics.hpp; Interrupted, exit
// status 3, in core/stop_signals.hpp.)

// What `error` means for the exit status: a HostError's own, kExitUserError for any other
// ssld::Error, kExitInternalError for everything else.
ExitStatus exit_status_of(const std::exception& error);

}  // namespace ssld::host
