// `ssld export CONFIG --output FILE`: a stage's student weights (or --weights FILE) written as
// .pth (torch.load + load_state_dict on the matching PyTorch model, no conversion),
// .safetensors, or with --torchscript TEMPLATE as a TorchScript model (torch.jit.load). The weights are loaded into the stage's student architecture first, so a file
// that does not fit the model is refused here rather than in Python.
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "stage/stage_plan.hpp"
#include "stage/assembly.hpp"
#include "train/checkpoint_store.hpp"
#include "weights/state_dict.hpp"
#include "weights/torchscript_export.hpp"

#include <ssld/error.hpp>

#include <iostream>

namespace ssld::host {

namespace {

// The losses' parameters and buffers (connectors, embeddings, memories) as the stage's last
// checkpoint holds them, under the checkpoint's names "loss/<loss name>/<tensor>".
void append_loss_state(const PlannedStage& selected, NamedTensors& tensors) {
  const CheckpointStore store(selected.folder);
  if (!store.exists())
    throw Error("stage '" + selected.stage.name + "' has no checkpoint to take the losses' state from (" + store.path() +
                "); train it first");
  size_t found = 0;
  Checkpoint checkpoint = store.read();
  for (auto& [name, tensor] : checkpoint.tensors)
    if (name.rfind("loss/", 0) == 0) tensors.emplace_back(name, tensor), ++found;
  if (found == 0)
    throw Error("the losses of stage '" + selected.stage.name + "' own no parameters or buffers (" + store.path() +
                " has none): nothing to add with --loss-state");
}

}  // namespace

int run_export(const ExportCommand& command) {
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  PlannedStage selected = select_stage(setup->root, setup->run, command.config, command.stage, diagnostics);
  TomlValue& config = selected.stage.config;
  if (!config.contains("student"))
    throw ConfigError(SourcePlace{command.config, 0, 0}, "stage '" + selected.stage.name + "' has no [student]");
  // Only the architecture is needed: where the stage's training started from does not matter.
  strip_student_host_keys(config["student"].as_table());
  auto student = std::unique_ptr<Student>(static_cast<Student*>(
      setup->factory->create(Kind::Student, config.at("student"), "student", Schema(), diagnostics)
          .release()));
  diagnostics.throw_if_any();

  if (command.loss_state && !command.torchscript.empty())
    throw Error("--loss-state adds tensors the TorchScript model has no place for; export them to a .pth or "
                ".safetensors file");
  std::string source = command.weights;
  if (source.empty()) {
    if (command.which == "ema") source = (selected.folder / "student_ema.safetensors").string();
    else source = stage_weights(selected.folder, command.which).string();
    if (!std::filesystem::exists(source))
      throw Error("stage '" + selected.stage.name + "' has no " + command.which + " weights yet (" + source +
                  "); train it first, or give --weights FILE");
  }
  load_state_dict(*student, read_weights(source), source);
  NamedTensors tensors = state_dict(*student);
  const size_t student_tensors = tensors.size();
  if (command.loss_state) append_loss_state(selected, tensors);
  if (!command.torchscript.empty()) write_torchscript(command.torchscript, tensors, command.output);
  else write_weights(command.output, tensors);
  std::cout << "wrote " << command.output << " (" << student_tensors << " tensors of student "
            << config.at("student").at("type").as_string().str << ", from " << source;
  if (command.loss_state) std::cout << "; " << tensors.size() - student_tensors << " of the losses' state";
  std::cout << ")\n";
  return 0;
}

}  // namespace ssld::host
