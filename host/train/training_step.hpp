// The SSLD training step, on a batch already on the device: the teacher's soft labels (online,
// or from the teacher cache), the student's forward and the weighted losses (autocast on CUDA
// when [train] precision asks), backward (loss-scaled for fp16; with the gradient all-reduce
// under data parallelism), clipping, the optimizer and the EMA. A step with a non-finite loss
// or gradient changes no weight: the update is masked on the device, so a CUDA step never
// waits for the host (fp16's dynamic loss scale is the one exception: it reads each step's
// overflow flag). It owns what a step updates, so checkpoints read it from here.
#pragma once

#include "train/stage_components.hpp"
#include "train/teacher_source.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace ssld::host {

// What one training step did, as tensors on the step's device: reading them on the host waits
// for the step, so the trainer sums them on the device (StepTally) and reads every log_every
// steps. The host-reading accessors are for tests and benchmarks.
struct StepOutcome {
  at::Tensor values;       // float [1 + terms]: the weighted total, then each [[loss]] term unweighted
  at::Tensor loss_finite;  // bool scalar
  at::Tensor applied;      // bool scalar: the loss and the gradients were finite, the weights moved

  double loss() const;
  bool was_applied() const;
  bool loss_was_finite() const;
};

class Optimizer;
class Ema;
class LossScaler;
class DataParallel;

// The teacher's share of step time, from timed steps: every step on the CPU; on CUDA the last
// step of each log window, with the device synchronized around it (timing every step would
// stall the queue).
class StepTiming {
 public:
  explicit StepTiming(c10::Device device) : cuda_(device.is_cuda()) {}
  using Clock = std::chrono::steady_clock;

  // On CUDA only the steps that end a log window are timed, so timing adds no wait elsewhere.
  void begin_step(bool ends_log_window) { timed_ = !cuda_ || ends_log_window; }
  bool timed() const { return timed_; }
  // The time once the work queued so far (up to `produced`'s producer) has run: a timed CUDA
  // step waits for it with a device-to-host copy of one element.
  Clock::time_point now_after(const at::Tensor& produced) const;
  void add_teacher(Clock::time_point start, Clock::time_point end);
  void add_step(Clock::time_point start, Clock::time_point end);
  double teacher_share() const;  // -1 before any timed step

 private:
  bool cuda_;
  bool timed_ = false;
  double teacher_seconds_ = 0, step_seconds_ = 0;
};

// A loss's parameters and buffers under "loss/<its name>/...": their names in checkpoints and
// in the optimizer's state.
NamedTensors loss_parameters(WeightedLoss& term);
NamedTensors loss_buffers(WeightedLoss& term);

class TrainingStep {
 public:
  // Puts the student and the losses on `device` (NHWC weights with [train] channels_last) and
  // builds the optimizer (student and loss parameters), EMA, loss scaler and teacher source.
  // join() a DataParallel (built on those final tensors) before the first step under torchrun.
  TrainingStep(StageComponents& components, c10::Device device);
  ~TrainingStep();
  void join(DataParallel* data_parallel) { data_parallel_ = data_parallel; }

  // `ends_log_window`: the trainer reads the step tally after this step (TrainingReport::log_due),
  // so on CUDA this step is the one timed for the teacher's share.
  StepOutcome run(const Batch& batch, double lr, StepPosition position = {}, bool ends_log_window = false);

  Optimizer& optimizer() { return *optimizer_; }
  Ema* ema() { return ema_.get(); }  // null without [train] ema_decay
  LossScaler& scaler() { return *scaler_; }
  const TeacherSource* teacher() const { return teacher_source_.get(); }  // null without a teacher
  const StepTiming& timing() const { return timing_; }
  // What the optimizer steps: the student's parameters, then every loss's.
  NamedTensors trainable_parameters();

 private:
  StageComponents& components_;
  c10::Device device_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Ema> ema_;
  std::unique_ptr<LossScaler> scaler_;
  std::unique_ptr<TeacherSource> teacher_source_;
  bool teacher_read_ = false;  // some loss reads the teacher's outputs
  DataParallel* data_parallel_ = nullptr;
  bool autocast_ = false;
  at::ScalarType autocast_dtype_ = at::kFloat;
  std::vector<std::string> student_features_, teacher_features_;  // what the losses read
  StepTiming timing_;
};

}  // namespace ssld::host
