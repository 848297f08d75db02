// The teacher's work done once: when runs share a teacher, its training data and its
// augmentation stream (same seed, same sampler: every random choice is keyed by seed, epoch,
// step and sample), the teacher's outputs are the same in every run. [teacher_cache] stores
// them the first time and reads them back afterwards:
//
//   [teacher_cache]
//   store = "runs/teacher_cache"  # a store root; one folder per key inside (default: <output_dir>/teacher_cache)
//   format = "fp32"               # fp32 (bit-identical), fp16, or topk (FKD-style)
//   top_k = 10                    # topk: probabilities kept per sample
//   mode = "fill"                 # fill: read stored epochs, compute and store the others
//                                 # read: every epoch must be stored (`ssld cache-teacher`)
//
// The key (teacher identity and table, the data.train pipeline, seed, device, channels_last,
// format) names the store folder, so a changed teacher or pipeline never reads stale labels;
// each record also carries the batch's sample ids, checked against the batch being trained.
#pragma once

#include "config/diagnostics.hpp"
#include "config/settings_table.hpp"
#include "config/toml_value.hpp"
#include "eval/evaluation.hpp"
#include "teacher_cache/soft_label_store.hpp"

#include <ssld/model.hpp>
#include <ssld/options.hpp>

#include <functional>
#include <memory>
#include <string>

namespace ssld::host {

enum class CacheMode { Fill, Read };
extern const EnumNames<CacheMode> kCacheModeNames;

// The defaults here are [teacher_cache]'s defaults (teacher_cache.cpp's table documents each key).
struct TeacherCacheSettings {
  std::string store;  // the store root; empty: <output_dir>/teacher_cache
  std::string format = "fp32";  // SoftLabelCodec's format name (the codec parses it)
  int64_t top_k = 10;
  CacheMode mode = CacheMode::Fill;
};

const Schema& teacher_cache_table_schema();

// Reads a validated [teacher_cache]; `output_dir` is [run] output_dir (the default root's parent).
TeacherCacheSettings read_teacher_cache_settings(const TomlValue& root, const std::string& output_dir);

// What the teacher's outputs on data.train depend on, with paths made absolute so that a sweep's
// run configs and the config they came from name the same key. In a data-parallel run each rank
// sees its own shard of data.train, so `rank` and `world_size` join the key when world_size > 1
// (a single process's key stays as it always was).
// `plugins` names the plugin (name -> version) of every component that shapes the soft labels
// (teacher, datasets, sampler, augmentations): a fixed plugin never serves stale ones.
nlohmann::json teacher_cache_key(const TomlValue& stage_config, const Teacher& teacher, uint64_t seed,
                                 c10::Device device, bool channels_last, const SoftLabelCodec& codec,
                                 const nlohmann::json& plugins, int64_t rank = 0, int64_t world_size = 1);

// Names a validation pipeline (data.val and the seed) for the stored teacher accuracy.
std::string teacher_val_key(const TomlValue& stage_config, uint64_t seed);

class TeacherCache {
 public:
  TeacherCache(const TeacherCacheSettings& settings, nlohmann::json key, SoftLabelCodec codec, int64_t steps_per_epoch,
               std::string val_key);
  ~TeacherCache();

  // The teacher's logits for the batch at (epoch, step) with sample ids `ids`: read from the
  // store when the epoch is stored (the ids must match: a mismatch is refused as stale),
  // otherwise `compute()`d, and recorded when filling. When the format is lossy, the computed
  // logits come back as the store will return them, so every run sees the same soft labels.
  // The result is on `ids`' device.
  at::Tensor logits(int64_t epoch, int64_t step, const at::Tensor& ids, const std::function<at::Tensor()>& compute);

  // Throws ssld::Error naming the missing epochs (and how the root's other stores differ from
  // this key) when mode = "read" and an epoch in [first, end) is not stored.
  void require_epochs(int64_t first, int64_t end) const;

  // The stored validation accuracy of the teacher on [data.val], if any.
  std::optional<Accuracy> teacher_accuracy() const;
  void save_teacher_accuracy(const Accuracy& accuracy) const;

  const SoftLabelStore& store() const { return store_; }
  const SoftLabelCodec& codec() const { return codec_; }
  int64_t steps_read() const { return steps_read_; }
  int64_t steps_computed() const { return steps_computed_; }

 private:
  TeacherCacheSettings settings_;
  SoftLabelStore store_;
  SoftLabelCodec codec_;
  int64_t steps_per_epoch_;
  std::string val_key_;
  int64_t reader_epoch_ = -1, writer_epoch_ = -1;
  std::unique_ptr<EpochReader> reader_;
  std::unique_ptr<EpochWriter> writer_;
  int64_t steps_read_ = 0, steps_computed_ = 0;
};

}  // namespace ssld::host
