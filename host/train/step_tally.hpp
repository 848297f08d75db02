// What the training steps since the last read did, summed on the step's device so that no step
// waits for the host: the applied steps' losses, how many steps were applied or skipped (a
// non-finite loss, a non-finite gradient), and the runs of failed steps in a row. The trainer
// reads it, in one device-to-host copy, every log_every steps, before a checkpoint and at an
// epoch's end.
#pragma once

#include "train/training_step.hpp"

#include <atomic>
#include <cstdint>
#include <vector>

namespace ssld::host {

class StepTally {
 public:
  StepTally(size_t terms, c10::Device device);

  // `overflow_expected`: an fp16 step whose scaler backed off (its gradients overflowed, the
  // loss was finite) is neither a failure nor a success in the run of failed steps.
  void add(const StepOutcome& outcome, bool overflow_expected);

  struct Read {
    int64_t steps = 0, applied = 0;
    int64_t loss_nonfinite = 0, gradient_nonfinite = 0;  // the skipped steps, by cause
    int64_t overflow = 0;            // fp16 steps the loss scaler backed off from (not failures)
    int64_t failed_run = 0;          // failed steps in a row up to the last step
    int64_t longest_failed_run = 0;  // the longest such run that ended since the last read
    double loss_sum = 0;             // over the applied steps: the weighted total
    std::vector<double> term_sums;   // and each term
  };
  // The steps since the last read; starts the next tally (the failed run carries on).
  Read read();
  // Resuming: the failed run the checkpoint recorded.
  void set_failed_run(int64_t steps);

  // Reads made in this process: a test checks that steps between logs make none.
  static int64_t host_reads() { return host_reads_.load(); }

 private:
  at::Tensor counts_;   // double [steps, applied, loss_nonfinite, gradient_nonfinite, overflow]
  at::Tensor runs_;     // double [current failed run, longest since the last read]
  at::Tensor sums_;     // double [1 + terms]
  static std::atomic<int64_t> host_reads_;
};

}  // namespace ssld::host
