#include "train/step_tally.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace ssld::host {

std::atomic<int64_t> StepTally::host_reads_{0};

StepTally::StepTally(size_t terms, c10::Device device) {
  const auto options = at::TensorOptions().dtype(at::kDouble).device(device);
  counts_ = at::zeros({5}, options);
  runs_ = at::zeros({2}, options);
  sums_ = at::zeros({static_cast<int64_t>(terms) + 1}, options);
}

void StepTally::add(const StepOutcome& outcome, bool overflow_expected) {
  c10::NoGradGuard no_grad;
  const at::Tensor applied = outcome.applied.to(at::kDouble);
  const at::Tensor loss_nonfinite = outcome.loss_finite.logical_not().to(at::kDouble);
  const at::Tensor one = at::ones_like(applied), zero = at::zeros_like(applied);
  const at::Tensor gradient_nonfinite = one - applied - loss_nonfinite;
  counts_.add_(overflow_expected ? at::stack({one, applied, loss_nonfinite, zero, gradient_nonfinite})
                                 : at::stack({one, applied, loss_nonfinite, gradient_nonfinite, zero}));
  // The run of failed steps: reset by an applied step, kept by an expected fp16 overflow.
  const at::Tensor failed = overflow_expected ? loss_nonfinite : one - applied;
  const at::Tensor run = at::where(outcome.applied, zero, runs_[0] + failed);
  runs_.copy_(at::stack({run, at::maximum(runs_[1], run)}));
  // Double sums in step order, as the host summed the losses it read before.
  sums_.add_(at::where(outcome.applied, outcome.values.to(at::kDouble), at::zeros_like(sums_)));
}

StepTally::Read StepTally::read() {
  ++host_reads_;
  const at::Tensor host = at::cat({counts_, runs_, sums_}).to(at::kCPU);
  const double* values = host.data_ptr<double>();
  Read read;
  read.steps = static_cast<int64_t>(values[0]);
  read.applied = static_cast<int64_t>(values[1]);
  read.loss_nonfinite = static_cast<int64_t>(values[2]);
  read.gradient_nonfinite = static_cast<int64_t>(values[3]);
  read.overflow = static_cast<int64_t>(values[4]);
  read.failed_run = static_cast<int64_t>(values[5]);
  read.longest_failed_run = static_cast<int64_t>(values[6]);
  read.loss_sum = values[7];
  read.term_sums.assign(values + 8, values + host.numel());
  counts_.zero_();
  sums_.zero_();
  runs_[1].copy_(runs_[0]);
  return read;
}

void StepTally::set_failed_run(int64_t steps) { runs_.fill_(static_cast<double>(steps)); }

}  // namespace ssld::host
