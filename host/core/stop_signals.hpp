// Stopping a long loop cleanly: the first SIGINT/SIGTERM asks the loop (training, mining, a
// sweep) to stop at its next safe point, after saving its state. A second one exits at once
// (states are written atomically, so the last one stays intact), unless the loop asked to count
// the signals itself (a sweep passes the second on to its children as SIGKILL).
#pragma once

#include "core/errors.hpp"

namespace ssld::host {

// Thrown by a loop that stopped on a signal after saving its state: exit kExitInterrupted.
class Interrupted : public HostError {
 public:
  explicit Interrupted(const std::string& message) : HostError(message, kExitInterrupted) {}
};

enum class SecondSignal { Exits, Counts };

void install_stop_signals(SecondSignal second = SecondSignal::Exits);
// SIGINT and SIGTERM back to their default actions.
void restore_default_signals();
// How many stop signals arrived since install_stop_signals (async-signal-safe; cheap to poll).
int stop_signals_received();
inline bool stop_requested() { return stop_signals_received() > 0; }

}  // namespace ssld::host
