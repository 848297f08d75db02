#include "train/stop_signals.hpp"

#include <atomic>
#include <csignal>

namespace ssld::host {

namespace {

std::atomic<int> stop_signals{0};

extern "C" void on_stop_signal(int signal_number) {
  if (stop_signals.fetch_add(1) >= 1) {  // the second signal: leave now
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
  }
}

}  // namespace

void install_stop_signals() {
  stop_signals = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_requested() { return stop_signals.load() > 0; }

}  // namespace ssld::host
