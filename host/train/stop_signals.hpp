// Stopping a long loop cleanly: the first SIGINT/SIGTERM asks the loop (training, mining) to
// stop at its next safe point, after saving its state; a second one exits at once (states are
// written atomically, so the last one stays intact).
#pragma once

#include <stdexcept>

namespace ssld::host {

// Exit code of `ssld train` and `ssld mine` after SIGINT/SIGTERM: the state was saved.
constexpr int kInterruptedExitCode = 3;

// Thrown by a loop that stopped on a signal after saving its state; main() exits with
// kInterruptedExitCode and the message.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void install_stop_signals();
// True once a stop signal arrived (async-signal-safe flag; cheap to poll every step).
bool stop_requested();

}  // namespace ssld::host
