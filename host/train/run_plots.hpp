// A stage's figures, drawn from its metrics files when the stage ends (and again by
// `ssld report RUN_FOLDER`), so every run has the plots a user would otherwise make by hand:
//   loss.svg      the training loss and each loss term over the steps;
//   lr.svg        the learning rate over the steps;
//   accuracy.svg  validation top-1 and top-5 per epoch, the EMA's when kept, and the teacher's
//                 top-1 (from summary.json) as a flat line.
// Lines that do not parse (a run killed mid-write) are skipped; series longer than 2,000 points
// are averaged in buckets.
#pragma once

#include <filesystem>
#include <vector>

namespace ssld::host {

// Writes the figures of the stage in `stage_folder` (atomically) and returns their paths; none
// when it has no metrics yet.
std::vector<std::filesystem::path> write_stage_plots(const std::filesystem::path& stage_folder);

// The run's figure: accuracy.svg in the run folder, each stage's validation top-1 per epoch as
// one line (stages in their order, epochs counted on across them), so a distill-then-fine-tune
// run reads left to right. Returns its path; nothing when no stage has metrics.
std::vector<std::filesystem::path> write_run_plot(const std::filesystem::path& run_folder,
                                                  const std::vector<std::filesystem::path>& stage_folders);

// The figures' file names, for the links in results.md.
inline const char* const kStagePlotFiles[] = {"loss.svg", "lr.svg", "accuracy.svg"};

}  // namespace ssld::host
