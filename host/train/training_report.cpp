#include "train/training_report.hpp"

#include <algorithm>
#include <cmath>

namespace ssld::host {

namespace {
double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

void LossMeans::add(const StepTally::Read& steps) {
  loss_ += steps.loss_sum;
  for (size_t i = 0; i < terms_.size() && i < steps.term_sums.size(); ++i) terms_[i] += steps.term_sums[i];
  steps_ += steps.applied;
}

double LossMeans::loss() const { return steps_ ? loss_ / steps_ : NAN; }
double LossMeans::term(size_t i) const { return steps_ ? terms_[i] / steps_ : NAN; }

void LossMeans::reset() {
  loss_ = 0;
  std::fill(terms_.begin(), terms_.end(), 0.0);
  steps_ = 0;
}

TrainingReport::TrainingReport(const TrainSettings& settings, std::vector<std::string> loss_names,
                               int64_t batch_size, MetricsLog* metrics, bool terminal)
    : settings_(settings), loss_names_(std::move(loss_names)), batch_size_(batch_size), metrics_(metrics), display_(terminal), window_(loss_names_.size()),
      epoch_(loss_names_.size()), since_epoch_row_(loss_names_.size()) {}

void TrainingReport::start_epoch(int64_t steps_per_epoch) {
  steps_per_epoch_ = steps_per_epoch;
  epoch_start_ = window_start_ = Clock::now();
  epoch_images_ = window_images_ = 0;
  epoch_.reset();
  window_.reset();
}

bool TrainingReport::log_due(int64_t step) const {
  const int64_t done = step + 1;
  return done % settings_.log_every == 0 || done == steps_per_epoch_;
}

void TrainingReport::add_losses(const StepTally::Read& steps) {
  window_.add(steps);
  epoch_.add(steps);
  since_epoch_row_.add(steps);
}

void TrainingReport::step(const StepReport& report) {
  window_images_ += report.images;
  epoch_images_ += report.images;

  const auto now = Clock::now();
  const int64_t done = report.step + 1;
  const bool log_due = this->log_due(report.step);
  const double epoch_rate = static_cast<double>(epoch_images_) / std::max(1e-9, seconds_between(epoch_start_, now));
  const double remaining_steps = static_cast<double>((settings_.epochs - report.epoch) * steps_per_epoch_ - done);
  display_.update(ProgressLine{report.epoch, settings_.epochs, done, steps_per_epoch_, epoch_.loss(), report.lr,
                               epoch_rate,
                               epoch_rate > 0 ? remaining_steps * static_cast<double>(batch_size_) / epoch_rate : 0},
                  log_due);
  if (!log_due) return;
  const double rate = static_cast<double>(window_images_) / std::max(1e-9, seconds_between(window_start_, now));
  std::vector<std::pair<std::string, double>> row = {{"epoch", static_cast<double>(report.epoch)},
                                                     {"step", static_cast<double>(report.step)},
                                                     {"global_step", static_cast<double>(report.global_step)},
                                                     {"lr", report.lr},
                                                     {"loss", window_.loss()},
                                                     {"images_per_second", rate}};
  for (size_t i = 0; i < loss_names_.size(); ++i) row.emplace_back("loss/" + loss_names_[i], window_.term(i));
  if (report.loss_scale) row.emplace_back("loss_scale", *report.loss_scale);
  if (metrics_) metrics_->step(row);
  window_start_ = now;
  window_images_ = 0;
  window_.reset();
}

double TrainingReport::take_train_loss() {
  const double loss = since_epoch_row_.loss();
  since_epoch_row_.reset();
  return loss;
}

}  // namespace ssld::host
