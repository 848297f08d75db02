// Named intermediate features of a network, for feature-distillation losses. A network's forward
// passes each point it can show to a FeatureTap; the tap keeps only the names the caller asked
// for, so a forward without requests costs nothing extra. Names follow the module paths a
// PyTorch user knows ("layer3", "features.6"); see each model plugin's README for its list.
#pragma once

#include <ssld/error.hpp>

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace ssld {

// "[2, 64, 7, 7]": a tensor shape as messages and listings print it.
inline std::string shape_text(c10::IntArrayRef sizes) {
  std::string text = "[";
  for (size_t i = 0; i < sizes.size(); ++i) text += (i ? ", " : "") + std::to_string(sizes[i]);
  return text + "]";
}

class FeatureTap {
 public:
  explicit FeatureTap(const std::vector<std::string>& wanted) : wanted_(wanted) {}

  bool any() const { return !wanted_.empty(); }
  bool wants(const std::string& name) const {
    return std::find(wanted_.begin(), wanted_.end(), name) != wanted_.end();
  }
  // Keeps `value` under `name` when it was asked for. A network that changes the tensor in place
  // afterwards (an in-place ReLU) passes `clone_first`, so the kept value stays the one at `name`.
  void keep(const std::string& name, const at::Tensor& value, bool clone_first = false) {
    if (wants(name)) kept_[name] = clone_first ? value.clone() : value;
  }
  // The kept features; throws ssld::Error naming a requested name the forward never passed
  // (`network` names the model in the message, `available` lists its names).
  std::map<std::string, at::Tensor> take(const std::string& network, const std::vector<std::string>& available) {
    for (const auto& name : wanted_) {
      if (kept_.count(name)) continue;
      std::string names;
      for (const auto& known : available) names += (names.empty() ? "" : ", ") + known;
      throw Error(network + " has no feature '" + name + "'; its features: " + (names.empty() ? "none" : names) +
                  " (ssld features CONFIG lists them with their shapes)");
    }
    return std::move(kept_);
  }

 private:
  const std::vector<std::string>& wanted_;
  std::map<std::string, at::Tensor> kept_;
};

}  // namespace ssld
