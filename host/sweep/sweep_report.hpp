// A sweep's results, made only from what is on disk (manifest.json and each run's last stage's
// summary.json), so `ssld report SWEEP_DIR` rebuilds them at any time:
//   results.csv  one row per run: its axis values, seed, status and the last stage's results;
//   results.md   the same table, then the runs grouped over seeds (mean and std of best top-1,
//                best first), then the failed runs with their errors;
//   top1.svg     the grouped best top-1 as a figure (log/svg_plot.hpp);
//   curves.svg   every run's validation top-1 after each epoch.
#pragma once

#include <filesystem>
#include <string>

namespace ssld::host {

// Writes results.csv, results.md, top1.svg and curves.svg into `sweep_folder` and returns results.md's text. The
// output depends only on the folder's contents (no dates), so regenerating it is a no-op.
// Throws ssld::Error when the folder has no manifest.json.
std::string write_sweep_report(const std::filesystem::path& sweep_folder);

}  // namespace ssld::host
