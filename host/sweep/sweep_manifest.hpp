// The sweep folder's record of itself, manifest.json: the config, the axes, and one entry per run
// (id, assignment, status, exit code, error, timings). The runner keeps it current after every
// change so an interrupted sweep can be understood and resumed; `ssld report` reads it back.
//
// Folder layout:  <output_dir>/<run name>/manifest.json, results.csv, results.md
//                 <output_dir>/<run name>/runs/<run id>/config.toml, stdout.txt, stderr.txt,
//                                                       error.txt (failed runs), <stage>/...
#pragma once

#include "config/toml_json.hpp"
#include "sweep/sweep_plan.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace ssld::host {

// Run states, as written in the manifest.
inline const char* const kRunPending = "pending";
inline const char* const kRunRunning = "running";
inline const char* const kRunDone = "done";
inline const char* const kRunFailed = "failed";

inline std::filesystem::path sweep_manifest_path(const std::filesystem::path& sweep_folder) {
  return sweep_folder / "manifest.json";
}
inline std::filesystem::path sweep_run_folder(const std::filesystem::path& sweep_folder, const std::string& id) {
  return sweep_folder / "runs" / id;
}

// True when every stage of the run has written its summary.json: the run needs nothing more.
bool sweep_run_finished(const std::filesystem::path& run_folder, const std::vector<std::string>& stages);

// True when a stage of the run has a checkpoint to continue from (`ssld train --resume`).
bool sweep_run_has_checkpoint(const std::filesystem::path& run_folder, const std::vector<std::string>& stages);

// The manifest for `runs` (their stage names beside them), carrying over what `previous` (the
// manifest of an earlier invocation, or null) recorded about runs with the same id; statuses
// are recomputed from the run folders: finished runs are done, a run left "running" by a
// sweep that died is pending again, and a failed run stays failed until it is run again.
nlohmann::json make_sweep_manifest(const std::string& config_path, const SweepSpec& spec,
                                   const std::vector<SweepRun>& runs,
                                   const std::vector<std::vector<std::string>>& stages,
                                   const std::filesystem::path& sweep_folder, const nlohmann::json& previous);

// Reads manifest.json, or returns null when there is none. Throws ssld::Error when unreadable.
nlohmann::json read_sweep_manifest(const std::filesystem::path& sweep_folder);

void write_sweep_manifest(const std::filesystem::path& sweep_folder, const nlohmann::json& manifest);

}  // namespace ssld::host
