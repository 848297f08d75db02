#include "weights/torchscript_export.hpp"

#include "core/atomic_file.hpp"
#include "weights/state_dict.hpp"

#include <ssld/error.hpp>

#include <torch/script.h>


namespace ssld::host {

void write_torchscript(const std::string& template_path, const NamedTensors& state, const std::string& output) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(template_path, c10::Device(c10::kCPU));
  } catch (const c10::Error& error) {
    throw Error("cannot load the TorchScript template '" + template_path + "': " + error.what_without_backtrace());
  }
  NamedTensors targets;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) targets.emplace_back(item.name, item.value);
  for (const auto& item : module.named_buffers(/*recurse=*/true)) targets.emplace_back(item.name, item.value);
  // The template decides the names; the student's weights are the source.
  copy_state(targets, state, "the student's weights (for template " + template_path + ")");
  AtomicFile file(output);
  try {
    module.save(file.temporary().string());
  } catch (const c10::Error& error) {
    throw Error("cannot write '" + output + "': " + error.what_without_backtrace());
  }
  file.commit();
}

}  // namespace ssld::host
