// Students and teachers: image classifiers that map a normalized float NCHW batch to logits,
// and, when asked by name, to intermediate features (for feature-distillation losses).
#pragma once

#include <ssld/component.hpp>

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ssld {

struct ModelOutput {
  at::Tensor logits;                          // [N, num_classes], float
  std::map<std::string, at::Tensor> features;  // only the names that were requested
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// A trainable model. Parameter and buffer names follow PyTorch's state-dict convention
// ("layer1.0.conv1.weight"), so checkpoints load in Python without renaming.
class Student : public Component {
 public:
  // `images`: float NCHW, normalized, on the model's device. `features`: names from
  // feature_names() the caller wants besides the logits (usually none).
  virtual ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) = 0;
  virtual NamedTensors named_parameters() = 0;  // trainable tensors, in registration order
  virtual NamedTensors named_buffers() = 0;     // BatchNorm statistics and other state
  virtual void train(bool on) = 0;
  virtual void to(c10::Device device) = 0;
  virtual int64_t num_classes() const = 0;
  virtual std::vector<std::string> feature_names() const { return {}; }
};

// A frozen model whose predictions the student learns from. The host calls forward under
// no-grad; a teacher never changes its weights.
class Teacher : public Component {
 public:
  virtual ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) = 0;
  virtual void to(c10::Device device) = 0;
  virtual int64_t num_classes() const = 0;
  virtual std::vector<std::string> feature_names() const { return {}; }
  // A stable string naming the architecture and weights (e.g. a hash of the weights file):
  // soft-label caches are keyed by it, so two different teachers must never share one.
  virtual std::string identity() const = 0;
  // Every tensor the teacher computes with (parameters and buffers, state-dict names). The host
  // fingerprints them before training and checks after every epoch that none changed. Since
  // ABI 1.1; a teacher with nothing to show returns {} and is not checked.
  virtual NamedTensors named_state() const { return {}; }
};

}  // namespace ssld
