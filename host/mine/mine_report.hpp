// What `ssld mine` writes: the mined list (file_list format, read by the `file_list` dataset),
// the images it names when the candidates are not files, the summary (summary.json and
// summary.md: per-class counts, confidence histograms, rejections and why) and, while it
// runs, the tally a resumable state carries.
#pragma once

#include "data/data_config.hpp"
#include "mine/candidate_selection.hpp"
#include "mine/mine_config.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace ssld::host {

// The files of a mine folder.
struct MineFiles {
  std::filesystem::path folder;
  std::filesystem::path list() const { return folder / "mined.txt"; }
  std::filesystem::path images() const { return folder / "images"; }
  std::filesystem::path summary_json() const { return folder / "summary.json"; }
  std::filesystem::path summary_markdown() const { return folder / "summary.md"; }
  std::filesystem::path removed_pairs() const { return folder / "removed_pairs.tsv"; }
  std::filesystem::path state() const { return folder / "state.json"; }
};

// Everything counted over the candidates seen so far (besides the selection's own heaps).
struct MineTally {
  int64_t next_step = 0;  // the candidate loader's next batch
  int64_t seen = 0;
  int64_t bad_images = 0;
  int64_t duplicates = 0;
  int64_t pairs_bytes = 0;  // length of removed_pairs.tsv at this point (resume truncates to it)
  double seconds = 0;
  std::vector<int64_t> predicted_per_class;  // candidates the teacher put in each class
  std::vector<int64_t> histogram;            // max probability of every candidate, bins over [0, 1]

  MineTally(int64_t classes, int64_t bins)
      : predicted_per_class(static_cast<size_t>(classes)), histogram(static_cast<size_t>(bins)) {}
  nlohmann::json to_json() const;
  void load_json(const nlohmann::json& state);
  // Adds another shard's counts; the ranks ran side by side, so the time is the slower one's.
  void merge(const MineTally& other);
};

int64_t histogram_bin(double value, int64_t bins);

struct MineReport {
  std::string teacher;
  std::string score;
  std::vector<std::string> class_names;  // may be empty
  int64_t protected_images = 0;
};

// Writes the list (and the images of non-file candidates), summary.json and summary.md.
void write_mine_outputs(const MineFiles& files, const MineSettings& settings, const DataPipeline& candidates,
                        const MineTally& tally, const CandidateSelection::Result& result, const MineReport& report);

}  // namespace ssld::host
