// `ssld check CONFIG`: loads the config (with its bases and --set overrides), loads the
// plugins, validates every table of every stage and instantiates every component, then
// reports every problem it found at once. With --dry-run, data and teacher tables are checked
// against their plugins' schemas only (their files need not exist; see train/dry_run.hpp).
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "stage/stage_plan.hpp"
#include "stage/assembly.hpp"

#include <iostream>

namespace ssld::host {

int run_check(const CheckCommand& command) {
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  std::vector<Stage> stages = expand_stages(setup->root, diagnostics);
  std::unique_ptr<ScratchFolder> scratch;
  if (command.dry_run) {  // data and teacher tables checked against their schemas, then stood in for
    scratch = std::make_unique<ScratchFolder>();
    DryRunSettings dry;
    dry.scratch = scratch->path();
    setup->run.output_dir = (scratch->path() / "runs").string();
    for (auto& stage : stages) make_dry_run(stage.config, stage.name, dry, *setup->factory, diagnostics);
  }
  const std::vector<PlannedStage> planned = plan_stages(std::move(stages), setup->run, diagnostics);
  std::vector<std::string> summary;
  for (const auto& [stage, folder] : planned) {
    AssemblyOptions options;
    options.require_training = planned.size() > 1 || stage.config.contains("loss");
    options.weights_must_exist = false;
    const StageComponents components = assemble_stage(stage.config, *setup->factory, options, diagnostics);
    std::string line = "stage " + stage.name + ":";
    if (stage.config.contains("student") && components.student)
      line += " student " + stage.config.at("student").at("type").as_string().str;
    // Without problems, assemble_stage leaves out only a teacher whose earlier stage has not
    // written its weights yet.
    if (components.teacher) line += ", teacher " + stage.config.at("teacher").at("type").as_string().str;
    else if (stage.config.contains("teacher")) line += ", teacher from an earlier stage's weights (built when it has run)";
    for (const auto& loss : components.losses) line += ", loss " + loss.name + " x" + std::to_string(loss.weight);
    for (const auto* pipeline : {components.train.get(), components.val.get()}) {
      if (!pipeline) continue;
      int64_t samples = 0;
      for (const auto& source : pipeline->sources) samples += source->size();
      line += ", data." + pipeline->name + " " + std::to_string(samples) + " samples in " +
              std::to_string(pipeline->sampler->steps_per_epoch()) + " steps of " + std::to_string(pipeline->batch_size);
    }
    summary.push_back(line);
  }
  diagnostics.throw_if_any();

  std::cout << command.config << (command.dry_run ? ": OK as a dry run" : ": OK") << " (device " << setup->device.str() << ", seed " << setup->run.seed << ")\n";
  for (const auto& line : summary) std::cout << "  " << line << "\n";
  return 0;
}

}  // namespace ssld::host
