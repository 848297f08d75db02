// The optimization pieces of a training step: SGD (momentum, Nesterov) and AdamW written out
// on tensors, so their state is ours to checkpoint exactly and behaves the same on every
// libtorch version; the per-step learning-rate schedule; gradient clipping; and the
// exponential moving average of the student's weights.
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
  // Clips the gradients' global L2 norm to `max_norm` (when > 0); returns the norm before
  // clipping, non-finite when a gradient is.
  double clip_gradients(double max_norm);
  void step(double base_lr);

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
  int64_t steps_ = 0;
};

// The learning rate of global step `step` (0-based), updated every step.
double learning_rate(const TrainSettings& settings, int64_t step, int64_t steps_per_epoch);

class Ema {
 public:
  Ema(Student& student, double decay);
  void update(Student& student);
  const NamedTensors& tensors() const { return shadow_; }
  void load(const std::map<std::string, at::Tensor>& tensors);
  // Swaps the EMA weights into the student (call again to swap back).
  void swap_into(Student& student);

 private:
  double decay_;
  NamedTensors shadow_;
};

}  // namespace ssld::host
