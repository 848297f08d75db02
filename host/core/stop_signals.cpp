#include "core/stop_signals.hpp"

#include <atomic>
#include <csignal>

namespace ssld::host {

namespace {

std::atomic<int> signals_received{0};
std::atomic<bool> second_signal_exits{true};

extern "C" void on_stop_signal(int signal_number) {
  if (signals_received.fetch_add(1) >= 1 && second_signal_exits.load()) {  // the second signal: leave now
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
  }
}

}  // namespace

void install_stop_signals(SecondSignal second) {
  signals_received = 0;
  second_signal_exits = second == SecondSignal::Exits;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

void restore_default_signals() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

int stop_signals_received() { return signals_received.load(); }

}  // namespace ssld::host
