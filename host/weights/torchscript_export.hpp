// A trained student back in TorchScript: a scripted twin of its architecture (the file the
// torchscript student was loaded from, or torch.jit.script of the same torchvision/timm model)
// receives the student's weights by state-dict name and is saved, ready for torch.jit.load.
#pragma once

#include <ssld/model.hpp>

#include <string>

namespace ssld::host {

// Loads `template_path`, copies `state` into its parameters and buffers (every name on both
// sides, same shapes; ssld::Error lists the offending keys otherwise) and saves it to `output`
// atomically.
void write_torchscript(const std::string& template_path, const NamedTensors& state, const std::string& output);

}  // namespace ssld::host
