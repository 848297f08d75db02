// `ssld report SWEEP_DIR`: rebuilds a sweep's results.csv and results.md from its folder
// (manifest.json and the runs' summaries) without running anything.
#include "cli/commands.hpp"
#include "sweep/sweep_report.hpp"

#include <filesystem>
#include <iostream>

namespace ssld::host {

int run_report(const ReportCommand& command) {
  std::filesystem::path folder = std::filesystem::absolute(command.sweep_folder).lexically_normal();
  if (!folder.has_filename()) folder = folder.parent_path();  // "runs/sweep/"
  std::cout << write_sweep_report(folder) << "\nresults: " << (folder / "results.md").string() << ", "
            << (folder / "results.csv").string() << "\n";
  return 0;
}

}  // namespace ssld::host
