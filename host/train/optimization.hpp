// The optimization pieces of a training step: SGD (momentum, Nesterov) and AdamW written out
// on tensors, so their state is ours to checkpoint exactly and behaves the same on every
// libtorch version; the per-step learning-rate schedule; gradient clipping; and the
// exponential moving average of the student's weights. A step's "applied" flag is a bool
// tensor on the device: a skipped step (non-finite loss or gradient) is a masked update that
// leaves weights and state exactly as they were, so the host never has to read the flag.
#pragma once

#include "train/train_settings.hpp"

#include <ssld/model.hpp>

#include <map>

namespace ssld::host {

class Optimizer {
 public:
  // `parameters`: the student's named parameters. 1-d tensors (biases, norm weights) get no
  // weight decay unless settings.decay_bias_and_norm.
  Optimizer(NamedTensors parameters, const TrainSettings& settings);
  // More parameters (a loss's connector), stepped at lr x lr_scale, with the same weight-decay rule.
  void add_parameters(NamedTensors parameters, double lr_scale);

  void zero_grad();
  // The gradients' global L2 norm (a double scalar on the device, non-finite when a gradient
  // is), clipping them to `max_norm` first when > 0 and the norm is finite and larger.
  at::Tensor clip_gradients(double max_norm);
  // Updates the parameters and state where `applied` (a bool scalar on the parameters' device)
  // is true; computes the same bits as an unconditional update would, and changes nothing
  // where it is false.
  void step(double base_lr, const at::Tensor& applied);

  // "optimizer/<param>/<slot>" tensors and "optimizer/steps", for checkpoints.
  NamedTensors state() const;
  void load_state(const std::map<std::string, at::Tensor>& tensors);

 private:
  struct Slot {
    std::string name;
    at::Tensor parameter;
    bool decay;
    double lr_scale;
    at::Tensor first, second;  // sgd: momentum buffer; adamw: exp_avg, exp_avg_sq
  };
  std::vector<Slot> slots_;
  TrainSettings settings_;
  at::Tensor steps_;  // applied steps, a long scalar beside the parameters (AdamW's bias correction)
};

// The learning rate of global step `step` (0-based), updated every step.
double learning_rate(const TrainSettings& settings, int64_t step, int64_t steps_per_epoch);

class Ema {
 public:
  Ema(Student& student, double decay);
  // Moves the average toward the student's weights where `applied` (a bool scalar) is true.
  void update(Student& student, const at::Tensor& applied);
  const NamedTensors& tensors() const { return shadow_; }
  void load(const std::map<std::string, at::Tensor>& tensors);
  // Swaps the EMA weights into the student (call again to swap back).
  void swap_into(Student& student);

 private:
  double decay_;
  NamedTensors shadow_;
};

}  // namespace ssld::host
