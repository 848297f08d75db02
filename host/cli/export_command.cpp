// `ssld export CONFIG --output FILE`: a stage's student weights (or --weights FILE) written as
// .pth (torch.load + load_state_dict on the matching PyTorch model, no conversion),
// .safetensors, or with --torchscript TEMPLATE as a TorchScript model (torch.jit.load). The weights are loaded into the stage's student architecture first, so a file
// that does not fit the model is refused here rather than in Python.
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "stage/stage_plan.hpp"
#include "stage/assembly.hpp"
#include "weights/state_dict.hpp"
#include "weights/torchscript_export.hpp"

#include <ssld/error.hpp>

#include <iostream>

namespace ssld::host {

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

  std::string source = command.weights;
  if (source.empty()) {
    if (command.which == "ema") source = (selected.folder / "student_ema.safetensors").string();
    else source = stage_weights(selected.folder, command.which).string();
    if (!std::filesystem::exists(source))
      throw Error("stage '" + selected.stage.name + "' has no " + command.which + " weights yet (" + source +
                  "); train it first, or give --weights FILE");
  }
  load_state_dict(*student, read_weights(source), source);
  if (!command.torchscript.empty()) write_torchscript(command.torchscript, state_dict(*student), command.output);
  else write_weights(command.output, state_dict(*student));
  std::cout << "wrote " << command.output << " (" << state_dict(*student).size() << " tensors of student "
            << config.at("student").at("type").as_string().str << ", from " << source << ")\n";
  return 0;
}

}  // namespace ssld::host
