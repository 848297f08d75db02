// A student's state dict (parameters then buffers, PyTorch's names), weights files in the
// formats ssld reads and writes, and loading a state dict into a student.
#pragma once

#include <ssld/model.hpp>

#include <string>
#include <vector>

namespace ssld::host {

NamedTensors state_dict(Student& student);

// The tensors of a weights file: safetensors, or what torch.save wrote (.pth/.pt: a state dict,
// or a checkpoint holding one), told apart by the file's first bytes.
NamedTensors read_weights(const std::string& path);

// Writes by extension: .pth or .pt in torch.save's format (torch.load gives a dict ready for
// load_state_dict), anything else as safetensors.
void write_weights(const std::string& path, const NamedTensors& tensors);

struct LoadOptions {
  bool strict = true;               // every name on both sides; false: load the common names
  std::vector<std::string> ignore;  // glob patterns ("fc.*"): names left as initialized
};

// Copies `tensors` into the student's parameters and buffers by name. Shapes must always match.
// Throws ssld::Error naming `source` and the offending keys.
void load_state_dict(Student& student, const NamedTensors& tensors, const std::string& source,
                     const LoadOptions& options = {});

// The same for any set of named tensors (`targets` are written in place): a TorchScript
// module's, for instance.
void copy_state(const NamedTensors& targets, const NamedTensors& tensors, const std::string& source,
                const LoadOptions& options = {});

}  // namespace ssld::host
