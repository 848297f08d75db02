// Where a run writes and which stages it runs: <[run] output_dir>/<[run] name>/<stage name>/ for
// each stage, with the run-wide log and results table beside the stage folders. Every command
// that runs or reads stages gets them from here, with their references to earlier stages
// resolved the one way.
#pragma once

#include "config/diagnostics.hpp"
#include "stage/config_schema.hpp"
#include "stage/stages.hpp"

#include <filesystem>
#include <vector>

namespace ssld::host {

inline std::filesystem::path run_folder(const RunSettings& run) {
  return std::filesystem::absolute(std::filesystem::path(run.output_dir) / run.name);
}

struct PlannedStage {
  Stage stage;  // its references to earlier stages resolved into plain options
  std::filesystem::path folder;
};

// `stages` (from expand_stages, perhaps rewritten for a dry run) in order, each with its folder
// under `run` and its references to the stages before it resolved; problems go to diagnostics.
std::vector<PlannedStage> plan_stages(std::vector<Stage> stages, const RunSettings& run, Diagnostics& diagnostics);

// The stage a command-line `--stage NAME` asks for (empty: the last stage) of `config_path`'s
// stages. Throws ConfigError for an unknown name or a problem in the stages.
PlannedStage select_stage(const TomlValue& root, const RunSettings& run, const std::string& config_path,
                          const std::string& name, Diagnostics& diagnostics);

}  // namespace ssld::host
