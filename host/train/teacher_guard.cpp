#include "train/teacher_guard.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>


namespace ssld::host {

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
