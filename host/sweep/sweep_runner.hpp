// Runs a sweep's runs as child processes (`ssld train <run>/config.toml [--resume]`), --jobs at a
// time, and keeps the manifest current. A run's own config is written into its folder, so each
// run can be repeated or inspected on its own; the sweep only decides what to run and records
// what happened.
#pragma once

#include "config/toml_value.hpp"
#include "core/errors.hpp"
#include "sweep/sweep_plan.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace ssld::host {

struct SweepRunnerOptions {
  int jobs = 1;                // runs at once; CPU threads are divided between them
  std::vector<int> devices;    // CUDA devices to place runs on, round-robin; empty: as configured
  int hardware_threads = 0;    // cores to divide (0: the CPU budget, core/cpu_budget.hpp)
};

// A run ready to start: its id and resolved config (from sweep_run_config) and stage names.
struct PlannedRun {
  SweepRun run;
  TomlValue config;
  std::vector<std::string> stages;
};

// The config a run's child process trains: `planned.config` writing into
// <sweep_folder>/runs/<id>/, with its share of the CPU threads and its device (`index` picks one
// of options.devices round-robin), relative paths made absolute (the file moves away from the
// configs that wrote them) and --set texts read as TOML values.
TomlValue child_config(const PlannedRun& planned, size_t index, const std::filesystem::path& sweep_folder,
                       const SweepRunnerOptions& options);

// Runs every run of `manifest` that is not done (resuming those with a checkpoint), updating and
// rewriting the manifest as runs start and end. Returns kExitSuccess, kExitSweepRunsFailed (the
// other runs ran to the end), or kExitInterrupted after SIGINT/SIGTERM (forwarded to the
// children as SIGTERM; they checkpoint and are left pending). A child writes why it failed to
// <run>/failure.json (--failure-file), which the manifest's "error" quotes.
int run_sweep(const std::vector<PlannedRun>& runs, nlohmann::json& manifest, const std::filesystem::path& sweep_folder,
              const SweepRunnerOptions& options);

}  // namespace ssld::host
