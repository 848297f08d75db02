// How a stage's training reaches people and files, fed once per step: the progress bar or log
// line (progress_display.hpp), the step rows of metrics.jsonl every [train] log_every steps,
// and the train_loss of each epoch row. The losses arrive as the device-side sums the trainer
// reads at log steps (step_tally.hpp); one accumulator type keeps the three loss means.
#pragma once

#include "train/metrics_log.hpp"
#include "train/progress_display.hpp"
#include "train/step_tally.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace ssld::host {

// The mean of applied steps' losses (total and each term) since the last reset.
class LossMeans {
 public:
  explicit LossMeans(size_t terms = 0) : terms_(terms, 0.0) {}
  void add(const StepTally::Read& steps);  // their sums over the applied steps
  double loss() const;          // NaN without an applied step
  double term(size_t i) const;  // NaN without an applied step
  size_t terms() const { return terms_.size(); }
  void reset();

 private:
  double loss_ = 0;
  std::vector<double> terms_;
  int64_t steps_ = 0;
};

struct StepReport {
  int64_t epoch = 0, step = 0, global_step = 0;  // step within the epoch, 0-based
  double lr = 0;
  int64_t images = 0;                // over all ranks
  std::optional<double> loss_scale;      // fp16
};

class TrainingReport {
 public:
  // `metrics` is null on ranks other than 0; `loss_names` name the [[loss]] terms.
  TrainingReport(const TrainSettings& settings, std::vector<std::string> loss_names, int64_t batch_size,
                 MetricsLog* metrics, bool terminal);

  void start_epoch(int64_t steps_per_epoch);
  // Whether step `step` (0-based, in the epoch) ends a log window: every log_every steps and the
  // epoch's last. The trainer reads the steps' losses (add_losses) before such a step's report.
  bool log_due(int64_t step) const;
  void add_losses(const StepTally::Read& steps);
  void step(const StepReport& report);
  // Ends the progress bar's line before other output (a warning, an evaluation).
  void finish_line() { display_.finish(); }
  // The train_loss of the next epoch row: the mean since the last one.
  double take_train_loss();

 private:
  using Clock = std::chrono::steady_clock;
  const TrainSettings& settings_;
  std::vector<std::string> loss_names_;
  int64_t steps_per_epoch_ = 1, batch_size_;
  MetricsLog* metrics_;
  ProgressDisplay display_;
  LossMeans window_, epoch_, since_epoch_row_;
  Clock::time_point epoch_start_, window_start_;
  int64_t epoch_images_ = 0, window_images_ = 0;
};

}  // namespace ssld::host
