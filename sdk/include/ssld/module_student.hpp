// An adapter that turns a libtorch module (a TORCH_MODULE holder with forward(Tensor) ->
// logits) into an ssld::Student, so a plugin author writes only the network. Parameter and
// buffer names are the module's own, i.e. PyTorch's state-dict names.
#pragma once

#include <ssld/model.hpp>

#include <torch/nn/module.h>

namespace ssld {

template <class ModuleHolder>
class ModuleStudent : public Student {
 public:
  ModuleStudent(ModuleHolder module, int64_t num_classes)
      : module_(std::move(module)), num_classes_(num_classes) {}

  // Students with features override this and fill ModelOutput::features.
  ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    (void)features;
    return ModelOutput{module_->forward(images), {}};
  }
  NamedTensors named_parameters() override { return to_pairs(module_->named_parameters(/*recurse=*/true)); }
  NamedTensors named_buffers() override { return to_pairs(module_->named_buffers(/*recurse=*/true)); }
  void train(bool on) override { module_->train(on); }
  void to(c10::Device device) override { module_->to(device); }
  int64_t num_classes() const override { return num_classes_; }

  ModuleHolder& module() { return module_; }

 private:
  template <class Dict>
  static NamedTensors to_pairs(const Dict& dict) {
    NamedTensors pairs;
    pairs.reserve(dict.size());
    for (const auto& item : dict) pairs.emplace_back(item.key(), item.value());
    return pairs;
  }

  ModuleHolder module_;
  int64_t num_classes_;
};

}  // namespace ssld
