// An adapter that turns a libtorch module (a TORCH_MODULE holder with forward(Tensor) ->
// logits) into an ssld::Student, so a plugin author writes only the network. Parameter and
// buffer names are the module's own, i.e. PyTorch's state-dict names.
//
// A network with named features also has
//   torch::Tensor forward_with(const torch::Tensor& images, ssld::FeatureTap& tap);  // logits
//   std::vector<std::string> feature_names() const;
// which the adapter uses when a caller asks for features (features.hpp); plain forward() runs
// otherwise, so features cost nothing unless a loss reads them.
#pragma once

#include <ssld/features.hpp>
#include <ssld/model.hpp>

#include <torch/nn/module.h>

#include <type_traits>
#include <utility>

namespace ssld {

namespace detail {
template <class Impl, class = void>
struct HasFeatureTap : std::false_type {};
template <class Impl>
struct HasFeatureTap<Impl, std::void_t<decltype(std::declval<Impl&>().forward_with(std::declval<const at::Tensor&>(),
                                                                                   std::declval<FeatureTap&>()))>>
    : std::true_type {};
}  // namespace detail

template <class ModuleHolder>
class ModuleStudent : public Student {
 public:
  ModuleStudent(ModuleHolder module, int64_t num_classes)
      : module_(std::move(module)), num_classes_(num_classes) {}

  ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    if (features.empty()) return ModelOutput{module_->forward(images), {}};
    FeatureTap tap(features);
    if constexpr (kHasFeatures) {
      at::Tensor logits = module_->forward_with(images, tap);
      return ModelOutput{std::move(logits), tap.take("the model", feature_names())};
    }
    return ModelOutput{module_->forward(images), tap.take("the model", {})};  // throws: no features
  }
  std::vector<std::string> feature_names() const override {
    if constexpr (kHasFeatures) return module_->feature_names();
    return {};
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

  static constexpr bool kHasFeatures = detail::HasFeatureTap<typename ModuleHolder::ContainedType>::value;
  ModuleHolder module_;
  int64_t num_classes_;
};

}  // namespace ssld
