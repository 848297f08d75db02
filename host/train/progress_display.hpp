// How training progress reaches a person: on a terminal, one bar redrawn in place a few times a
// second; otherwise (a log file, CI) a plain log line every [train] log_every steps.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ssld::host {

struct ProgressLine {
  int64_t epoch = 0, epochs = 1;  // 0-based epoch
  int64_t step = 0, steps = 1;    // steps done in this epoch
  double loss = 0;                // mean over the epoch so far
  double lr = 0;
  double images_per_second = 0;
  double eta_seconds = 0;         // until the stage ends
};

std::string format_duration(double seconds);  // "1:02:03"

class ProgressDisplay {
 public:
  explicit ProgressDisplay(bool terminal) : terminal_(terminal) {}
  // Called every step; `log_due` marks the steps that get a log line when not on a terminal.
  void update(const ProgressLine& line, bool log_due);
  // Ends the bar's line so that later output starts on a fresh one.
  void finish();

 private:
  bool terminal_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace ssld::host
