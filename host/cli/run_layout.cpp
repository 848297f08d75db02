#include "cli/run_layout.hpp"

#include <algorithm>

namespace ssld::host {

SelectedStage select_stage(const TomlValue& root, const RunSettings& run, const std::string& config_path,
                           const std::string& name, Diagnostics& diagnostics) {
  std::vector<Stage> stages = expand_stages(root, diagnostics);
  diagnostics.throw_if_any();
  size_t index = stages.size() - 1;
  if (!name.empty()) {
    std::vector<std::string> names;
    for (const auto& stage : stages) names.push_back(stage.name);
    const auto found = std::find(names.begin(), names.end(), name);
    if (found == names.end())
      throw ConfigError(SourcePlace{config_path, 0, 0}, "no stage named '" + name + "'" + did_you_mean(name, names));
    index = static_cast<size_t>(found - names.begin());
  }
  const std::vector<std::filesystem::path> folders = stage_folders(run, stages);
  resolve_stage_references(stages[index], std::vector<Stage>(stages.begin(), stages.begin() + index), folders,
                           diagnostics);
  return SelectedStage{stages[index], folders[index]};
}

}  // namespace ssld::host
