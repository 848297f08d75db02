// A student's state dict (parameters then buffers, PyTorch's names) and loading one into it.
#pragma once

#include <ssld/model.hpp>

#include <string>

namespace ssld::host {

NamedTensors state_dict(Student& student);

// Copies `tensors` into the student's parameters and buffers by name (strict: every name on
// both sides, same shapes). Throws ssld::Error naming `source` and the offending keys.
void load_state_dict(Student& student, const NamedTensors& tensors, const std::string& source);

}  // namespace ssld::host
