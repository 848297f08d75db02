// Loss terms. The trainer's objective is the weighted sum of the configured [[loss]] tables;
// each term also reports named metrics for the logs.
#pragma once

#include <ssld/model.hpp>

#include <map>
#include <vector>

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
  // Since ABI 1.2 (appended: 1.1 losses never read it): the batch's stable sample ids, int64
  // [N], e.g. to key a memory over the dataset (CRD). Never null from a 1.2 host.
  const at::Tensor* sample_ids = nullptr;
};

// The shape of each feature a loss asked for, from a probe forward of two images of the
// training pipeline before training (and at `ssld check`): name -> sizes, e.g. [2, 64, 7, 7].
using FeatureShapes = std::map<std::string, std::vector<int64_t>>;

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

  // ---- Since ABI 1.2: losses that own parameters (connectors, embeddings, memories). The host
  // never calls these on a loss from a 1.1 plugin (it has none of them).
  //
  // Called once, after the factory and before training or `ssld check` finishes, with the
  // shapes of the requested features (batch of 2; empty maps when the loss asks for none) and
  // the size of the training set. The loss builds what depends on them here (a 1x1 conv from the
  // student's channels to the teacher's) and throws ssld::Error for shapes it cannot connect,
  // naming both. torch's generator is seeded with the run's seed right before.
  virtual void prepare(const FeatureShapes& student, const FeatureShapes& teacher, int64_t dataset_size) {
    (void)student, (void)teacher, (void)dataset_size;
  }
  // Trainable tensors, optimized with the student's by the same optimizer (their learning rate
  // times the [[loss]] table's lr_scale); state-dict-style names, unique within the loss.
  virtual NamedTensors named_parameters() { return {}; }
  // Other state saved in checkpoints and restored on resume (BatchNorm statistics, a memory
  // bank). Tensors updated in place keep resume exact.
  virtual NamedTensors named_buffers() { return {}; }
  virtual void train(bool on) { (void)on; }
  virtual void to(c10::Device device) { (void)device; }
};

}  // namespace ssld
