#include "train/teacher_guard.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>

#include <cstring>

namespace ssld::host {

uint64_t tensor_digest(const at::Tensor& tensor) {
  const at::Tensor values = tensor.detach().to(at::kCPU).contiguous();
  const auto* bytes = static_cast<const unsigned char*>(values.data_ptr());
  const size_t size = values.numel() * values.element_size();
  // FNV-1a over 8-byte words: fast enough to check a ResNeXt-101's 800 MB after every epoch.
  uint64_t hash = 14695981039346656037ull;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes + i, 8);
    hash = (hash ^ word) * 1099511628211ull;
  }
  for (; i < size; ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  return hash;
}

TeacherGuard::TeacherGuard(const Teacher& teacher) : teacher_(teacher) {
  for (const auto& [name, tensor] : teacher.named_state()) fingerprints_.emplace_back(name, tensor_digest(tensor));
}

void TeacherGuard::verify(const std::string& when) const {
  const NamedTensors state = teacher_.named_state();
  std::string changed, with_grad;
  auto append = [](std::string& list, const std::string& name) { list += (list.empty() ? "'" : ", '") + name + "'"; };
  if (state.size() != fingerprints_.size())
    throw Error("the teacher's tensors changed " + when + ": it had " + std::to_string(fingerprints_.size()) +
                ", now " + std::to_string(state.size()));
  for (size_t i = 0; i < state.size(); ++i) {
    const auto& [name, tensor] = state[i];
    if (name != fingerprints_[i].first || tensor_digest(tensor) != fingerprints_[i].second) append(changed, name);
    if (tensor.requires_grad() || tensor.grad().defined()) append(with_grad, name);
  }
  if (!changed.empty())
    throw Error("the teacher's weights changed " + when + " (" + changed + "). A teacher must stay frozen: its plugin "
                "has to keep the network in eval mode (BatchNorm statistics) and never update it");
  if (!with_grad.empty())
    throw Error("the teacher has tensors that take gradients " + when + " (" + with_grad + "); a teacher plugin must "
                "freeze them (requires_grad = false)");
}

}  // namespace ssld::host
