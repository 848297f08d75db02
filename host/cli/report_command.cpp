// `ssld report FOLDER`: for a sweep's folder, rebuilds results.csv, results.md and its plots
// from manifest.json and the runs' summaries; for a `ssld train` run folder, redraws every
// stage's plots from its metrics files. Nothing is run.
#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "sweep/sweep_report.hpp"
#include "train/run_plots.hpp"

#include <algorithm>
#include <filesystem>
#include <iostream>

namespace ssld::host {

namespace {

int report_train_run(const std::filesystem::path& folder) {
  std::vector<std::filesystem::path> stages;
  std::error_code error;
  std::filesystem::directory_iterator entries(folder, error);
  if (error) throw Error("cannot list '" + folder.string() + "': " + error.message());
  for (const auto& entry : entries) {
    if (!entry.is_directory(error)) continue;
    const auto written = write_stage_plots(entry.path());  // none for a folder without metrics
    for (const auto& file : written) std::cout << "wrote " << file.string() << "\n";
    if (!written.empty()) stages.push_back(entry.path());
  }
  // The stages in the order they ran: by when each last wrote its step metrics.
  std::sort(stages.begin(), stages.end(), [](const auto& a, const auto& b) {
    std::error_code ignored;
    return std::filesystem::last_write_time(a / "metrics_steps.jsonl", ignored) <
           std::filesystem::last_write_time(b / "metrics_steps.jsonl", ignored);
  });
  for (const auto& written : write_run_plot(folder, stages)) std::cout << "wrote " << written.string() << "\n";
  if (stages.empty())
    throw Error("'" + folder.string() + "' is neither a sweep's folder (no manifest.json) nor a training run's (no stage " +
                "folder with metrics_steps.jsonl or metrics_epochs.jsonl)");
  return 0;
}

}  // namespace

int run_report(const ReportCommand& command) {
  std::filesystem::path folder = std::filesystem::absolute(command.sweep_folder).lexically_normal();
  if (!folder.has_filename()) folder = folder.parent_path();  // "runs/sweep/"
  if (!std::filesystem::is_directory(folder)) throw Error("'" + folder.string() + "' is not a folder");
  if (!std::filesystem::exists(folder / "manifest.json")) return report_train_run(folder);
  std::cout << write_sweep_report(folder) << "\nresults: " << (folder / "results.md").string() << ", "
            << (folder / "results.csv").string() << "\n";
  return 0;
}

}  // namespace ssld::host
