// `ssld sweep CONFIG`: expands the config's [sweep] table into runs, runs each as its own
// `ssld train` child process (skipping finished runs, resuming unfinished ones), and writes the
// sweep's manifest and results tables. See README, "Sweeps".
#include "cli/commands.hpp"
#include "stage/stage_plan.hpp"
#include "config/config_loader.hpp"
#include "sweep/sweep_manifest.hpp"
#include "sweep/sweep_plan.hpp"
#include "sweep/sweep_report.hpp"
#include "sweep/sweep_runner.hpp"

#include <iostream>
#include <map>

namespace ssld::host {

namespace {

std::string assignment_text(const SweepRun& run) {
  std::string text;
  for (const AxisValue& axis_value : run.assignment) text += (text.empty() ? "" : ", ") + axis_value.key + "=" + axis_value.label;
  if (run.seed) text += (text.empty() ? "" : ", ") + std::string("seed=") + std::to_string(*run.seed);
  return text;
}

// Every run's config is built (and its host tables checked) before anything starts, so a key
// that does not resolve stops the sweep at once rather than in its tenth run.
std::vector<PlannedRun> plan_runs(const TomlValue& root, const SweepSpec& spec) {
  std::vector<PlannedRun> planned;
  for (const auto& run : expand_sweep(spec)) {
    TomlValue config = sweep_run_config(root, spec, run);
    Diagnostics diagnostics;
    std::vector<std::string> stages;
    for (const auto& stage : expand_stages(config, diagnostics)) stages.push_back(stage.name);
    diagnostics.throw_if_any();
    planned.push_back(PlannedRun{run, std::move(config), std::move(stages)});
  }
  return planned;
}

void print_plan(const std::vector<PlannedRun>& planned, const nlohmann::json& manifest) {
  std::map<std::string, size_t> counts;
  for (size_t i = 0; i < planned.size(); ++i) {
    const std::string status = manifest["runs"][i]["status"];
    ++counts[status];
    std::cout << "  " << status << std::string(status.size() < 8 ? 8 - status.size() : 0, ' ') << " "
              << planned[i].run.id << "  (" << assignment_text(planned[i].run) << ")\n";
  }
  std::cout << planned.size() << " runs: " << counts[kRunDone] << " done, " << counts[kRunFailed] << " failed, "
            << counts[kRunPending] << " pending; dry run: nothing was run\n";
}

}  // namespace

int run_sweep_command(const SweepCommand& command) {
  const TomlValue root = load_config(command.config, command.overrides);
  Diagnostics diagnostics;
  validate_host_tables(root, diagnostics);
  diagnostics.throw_if_any();
  const SweepSpec spec = read_sweep_spec(root);
  const std::vector<PlannedRun> planned = plan_runs(root, spec);
  const std::filesystem::path folder = run_folder(read_run_settings(root));

  std::vector<SweepRun> runs;
  std::vector<std::vector<std::string>> stages;
  for (const auto& run : planned) {
    runs.push_back(run.run);
    stages.push_back(run.stages);
  }
  nlohmann::json manifest =
      make_sweep_manifest(command.config, spec, runs, stages, folder, read_sweep_manifest(folder));
  std::cout << command.config << ": " << spec.mode << " sweep of " << planned.size() << " runs into "
            << folder.string() << "\n";
  if (command.dry_run) {
    print_plan(planned, manifest);
    return 0;
  }
  write_sweep_manifest(folder, manifest);
  SweepRunnerOptions options;
  options.jobs = command.jobs;
  options.devices = command.devices;
  const int code = run_sweep(planned, manifest, folder, options);
  const std::string report = write_sweep_report(folder);
  std::cout << "\n" << report << "\nmanifest: " << sweep_manifest_path(folder).string()
            << "\nresults: " << (folder / "results.md").string() << "\n";
  if (code == kExitInterrupted) std::cout << "interrupted: run the same command again to resume\n";
  return code;
}

}  // namespace ssld::host
