// The [mine] table of `ssld mine`: where the candidates come from (dataset tables, like
// [[data.train.sources]]), what to keep (score, top-k per class, thresholds, class balance),
// what to protect (near-duplicates of the validation images are removed) and where to write.
//
//   [mine]                    batch_size, score, top_k_per_class, min_confidence, max_total,
//                             class_balance, classes, output, checkpoint_every, histogram_bins,
//                             augment / batch_augment (default: data.val's)
//   [[mine.sources]]          the candidates: any dataset, labels ignored
//   [mine.dedup]              method (none|phash|feature|both), max_hamming, feature, min_cosine
//   [[mine.protected.sources]] the protected images (default: data.val's sources)
#pragma once

#include "config/diagnostics.hpp"
#include "config/toml_value.hpp"
#include "mine/candidate_selection.hpp"

#include <ssld/options.hpp>

#include <optional>
#include <string>

namespace ssld::host {

struct DedupSettings {
  bool phash = true;         // method phash or both
  bool feature = false;      // method feature or both
  int64_t max_hamming = 8;   // phash: a candidate within this many bits (of 64) may be a duplicate
  double min_correlation = 0.98;  // phash: ... and is one when the thumbnails correlate at least this much
  std::string feature_name;  // feature: the teacher's named feature compared
  double min_cosine = 0.95;  // feature: a candidate at least this similar is a duplicate
  bool enabled() const { return phash || feature; }
};

struct MineSettings {
  SelectionSettings selection;
  DedupSettings dedup;
  std::string output;  // folder; empty: <output_dir>/<run name>/mine
  int64_t checkpoint_every = 20;  // batches between resumable state files
  int64_t histogram_bins = 10;
};

const Schema& mine_table_schema();

// Reads a validated [mine] (validate_host_tables checks it against mine_table_schema); cross-field
// problems go to `diagnostics`.
MineSettings read_mine_settings(const TomlValue& root, Diagnostics& diagnostics);

// The pipeline tables (for build_pipeline_from) of the candidates and of the protected images:
// sequential, with [mine]'s per-sample and batch augmentations or else data.val's, so both go
// through the transforms the teacher is evaluated with. nullopt: nothing to protect.
TomlValue candidate_pipeline_table(const TomlValue& root);
std::optional<TomlValue> protected_pipeline_table(const TomlValue& root);

}  // namespace ssld::host
