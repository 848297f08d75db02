// Loss terms. The trainer's objective is the weighted sum of the configured [[loss]] tables;
// each term also reports named metrics for the logs.
#pragma once

#include <ssld/model.hpp>

namespace ssld {

struct LossInputs {
  const ModelOutput& student;
  const ModelOutput* teacher;    // nullptr when the run has no teacher
  const at::Tensor& labels;      // int64 [N]; -1 where the sample is unlabeled
  const at::Tensor& label_mask;  // bool [N]; true where labels are usable
  // Set when a batch augmentation mixed images (Batch::mix_index / mix_lambda): image i holds
  // mix_lambda[i] of its own sample and the rest of sample mix_index[i]. Undefined otherwise.
  const at::Tensor& mix_index;
  const at::Tensor& mix_lambda;
};

struct LossOutput {
  at::Tensor value;  // scalar; differentiable w.r.t. the student's outputs
  NamedTensors metrics;  // detached scalars, logged as "<loss name>/<metric>"
};

class Loss : public Component {
 public:
  virtual LossOutput compute(const LossInputs& inputs) = 0;
  // The host refuses a config whose losses need a teacher it does not have.
  virtual bool needs_teacher() const = 0;
  // True when the loss reads labels; SSLD's own loss does not.
  virtual bool uses_labels() const = 0;
  // Feature names the loss wants from the student and the teacher (feature distillation).
  virtual std::vector<std::string> student_features() const { return {}; }
  virtual std::vector<std::string> teacher_features() const { return {}; }
};

}  // namespace ssld
