#include "stage/stage_plan.hpp"

#include <algorithm>

namespace ssld::host {

std::vector<PlannedStage> plan_stages(std::vector<Stage> stages, const RunSettings& run, Diagnostics& diagnostics) {
  std::vector<std::filesystem::path> folders;
  for (const auto& stage : stages) folders.push_back(run_folder(run) / stage.name);
  for (size_t i = 0; i < stages.size(); ++i)
    resolve_stage_references(stages[i], std::vector<Stage>(stages.begin(), stages.begin() + i), folders, diagnostics);
  std::vector<PlannedStage> planned;
  for (size_t i = 0; i < stages.size(); ++i) planned.push_back(PlannedStage{std::move(stages[i]), folders[i]});
  return planned;
}

PlannedStage select_stage(const TomlValue& root, const RunSettings& run, const std::string& config_path,
                          const std::string& name, Diagnostics& diagnostics) {
  std::vector<PlannedStage> stages = plan_stages(expand_stages(root, diagnostics), run, diagnostics);
  diagnostics.throw_if_any();
  if (name.empty()) return stages.back();
  std::vector<std::string> names;
  for (const auto& planned : stages) {
    if (planned.stage.name == name) return planned;
    names.push_back(planned.stage.name);
  }
  throw ConfigError(SourcePlace{config_path, 0, 0}, "no stage named '" + name + "'" + did_you_mean(name, names));
}

}  // namespace ssld::host
