// Where a run writes: <[run] output_dir>/<[run] name>/<stage name>/ for each stage, with the
// run-wide log and results table beside the stage folders.
#pragma once

#include "stage/config_schema.hpp"
#include "config/diagnostics.hpp"
#include "stage/stages.hpp"

#include <filesystem>
#include <vector>

namespace ssld::host {

inline std::filesystem::path run_folder(const RunSettings& run) {
  return std::filesystem::absolute(std::filesystem::path(run.output_dir) / run.name);
}

inline std::vector<std::filesystem::path> stage_folders(const RunSettings& run, const std::vector<Stage>& stages) {
  std::vector<std::filesystem::path> folders;
  for (const auto& stage : stages) folders.push_back(run_folder(run) / stage.name);
  return folders;
}

struct SelectedStage {
  Stage stage;                 // its references to earlier stages resolved into plain options
  std::filesystem::path folder;
};

// The stage a command-line `--stage NAME` asks for (empty: the last stage) of `config_path`'s
// stages. Throws ConfigError for an unknown name.
SelectedStage select_stage(const TomlValue& root, const RunSettings& run, const std::string& config_path,
                           const std::string& name, Diagnostics& diagnostics);

}  // namespace ssld::host
