// `ssld features CONFIG [--stage NAME]`: every feature name of the stage's student and teacher
// with its shape, from a probe forward of two images of data.train, so a feature loss's
// `student` / `teacher` names are never guessed. The stage's losses are left out: the command
// is how one finds the names they should read.
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "stage/assembly.hpp"
#include "stage/feature_probe.hpp"
#include "stage/stage_plan.hpp"

#include <iostream>

namespace ssld::host {

namespace {
void print_side(const char* side, const std::string& type, const std::vector<std::string>& names,
                const FeatureShapes& shapes) {
  std::cout << side << " (" << type << "): " << names.size() << " feature" << (names.size() == 1 ? "" : "s")
            << (names.empty() ? " (it shows none)" : "") << "\n";
  for (const auto& name : names) {
    auto found = shapes.find(name);
    std::cout << "  " << name << "  " << (found == shapes.end() ? "(not produced)" : ssld::shape_text(found->second)) << "\n";
  }
}
}  // namespace

int run_features(const FeaturesCommand& command) {
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  PlannedStage selected = select_stage(setup->root, setup->run, command.config, command.stage, diagnostics);
  TomlTable& config = selected.stage.config.as_table();
  config.erase("loss");
  config.erase("teacher_cache");
  AssemblyOptions options;
  options.require_training = false;
  StageComponents components = assemble_stage(selected.stage.config, *setup->factory, options, diagnostics);
  if (!components.student) diagnostics.add(SourcePlace{command.config, 0, 0}, "stage '" + selected.stage.name + "' has no [student]");
  if (!components.train)
    diagnostics.add(SourcePlace{command.config, 0, 0}, "stage '" + selected.stage.name + "' has no [data.train] to probe with");
  if (config.count("teacher") && !components.teacher && diagnostics.empty())
    diagnostics.add(SourcePlace::of(config.at("teacher")),
                    "the teacher's weights do not exist yet (train the stage it comes from first)");
  diagnostics.throw_if_any();

  const std::vector<std::string> student_names = components.student->feature_names();
  const std::vector<std::string> teacher_names =
      components.teacher ? components.teacher->feature_names() : std::vector<std::string>{};
  const FeatureProbe probe = probe_features(components.student.get(), components.teacher.get(), *components.train,
                                            static_cast<uint64_t>(setup->run.seed), student_names, teacher_names);
  std::cout << "stage " << selected.stage.name << ", probe input " << ssld::shape_text(probe.input) << " (two images of data.train)\n";
  print_side("student", config.at("student").at("type").as_string().str, student_names, probe.student);
  if (components.teacher)
    print_side("teacher", config.at("teacher").at("type").as_string().str, teacher_names, probe.teacher);
  return 0;
}

}  // namespace ssld::host
