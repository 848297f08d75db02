#include "train/progress_display.hpp"

#include "log/logging.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

namespace ssld::host {

std::string format_duration(double seconds) {
  char text[32];
  const int s = static_cast<int>(std::max(0.0, seconds));
  std::snprintf(text, sizeof(text), "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return text;
}

void ProgressDisplay::update(const ProgressLine& line, bool log_due) {
  const bool epoch_done = line.step == line.steps;
  char numbers[160];
  std::snprintf(numbers, sizeof(numbers), "loss %.4f  lr %.4g  %.0f img/s  eta %s", line.loss, line.lr,
                line.images_per_second, format_duration(line.eta_seconds).c_str());
  if (!terminal_) {
    if (log_due || epoch_done)
      spdlog::info("epoch {}/{} step {}/{}  {}", line.epoch + 1, line.epochs, line.step, line.steps, numbers);
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (!epoch_done && drawn_ && now - last_draw_ < std::chrono::milliseconds(250)) return;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(kWidth * line.step / std::max<int64_t>(1, line.steps));
  const std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
  char text[320];
  std::snprintf(text, sizeof(text), "epoch %lld/%lld [%s] %lld/%lld  %s", static_cast<long long>(line.epoch + 1),
                static_cast<long long>(line.epochs), bar.c_str(), static_cast<long long>(line.step),
                static_cast<long long>(line.steps), numbers);
  status_line::show(text);
  drawn_ = true;
  last_draw_ = now;
  if (epoch_done) finish();
}

void ProgressDisplay::finish() {
  if (terminal_ && drawn_) status_line::end();
  drawn_ = false;
}

}  // namespace ssld::host
