// Builds the data pipelines a config describes under [data]: `data.train` and `data.val`, each
// with its sources (dataset plugins seen through DatasetView), a sampler, per-sample and batch
// augmentations, and loader settings.
//
//   [data]                        threads, prefetch, read_timeout_s
//   [data.train]                  batch_size, reduced_decode_min_side
//   [[data.train.sources]]        type = "<dataset>", its options, and subset, drop_labels,
//                                 grayscale_to_rgb, grayscale, on_bad_image, max_bad_fraction
//   [data.train.sampler]          type = "<sampler>" (default: random; sequential for val)
//   [[data.train.augment]]        per-sample augmentations, in order
//   [[data.train.batch_augment]]  batch augmentations on the device, in order (normalize, mixup)
#pragma once

#include "components/component_factory.hpp"
#include "config/diagnostics.hpp"
#include "data/loader.hpp"
#include "data/sample_pipeline.hpp"

#include <ssld/augmentation.hpp>

#include <memory>
#include <string>
#include <vector>

namespace ssld::host {

struct BatchAugmentationStep {
  std::unique_ptr<BatchAugmentation> augmentation;
  std::string name;
  uint64_t purpose;
};

struct DataPipeline {
  std::string name;  // "train" or "val"
  int64_t batch_size = 0;
  std::vector<std::unique_ptr<DatasetView>> sources;
  std::unique_ptr<Sampler> sampler;
  std::vector<AugmentationStep> augmentations;
  std::vector<BatchAugmentationStep> batch_augmentations;
  std::unique_ptr<SamplePipeline> samples;
  LoaderSettings loader;

  int64_t num_classes() const;  // the largest of the labeled sources'
};

struct Sharding {
  int64_t rank = 0;
  int64_t world_size = 1;
};

// Keys every dataset table accepts besides its own options (subset, drop_labels, ...): the
// host applies them.
const Schema& source_host_schema();

// The host table schema of [data] (its pipelines are validated by build_pipeline).
const Schema& data_table_schema();

// Builds data.<name> when the config has it; every problem goes to `diagnostics` (nullptr then).
std::unique_ptr<DataPipeline> build_pipeline(const TomlValue& root, const std::string& name,
                                             const ComponentFactory& factory, Sharding sharding,
                                             Diagnostics& diagnostics);

// The keys of one pipeline table (batch_size, sources, sampler, augment, ...).
const Schema& pipeline_schema();

// The same for a pipeline table found elsewhere (`ssld mine` builds its candidates from
// [mine]): `data` is the [data] table (threads, prefetch; may be empty), `prefix` names the
// table in messages ("mine" gives "mine.sources[0] (idx)").
std::unique_ptr<DataPipeline> build_pipeline_from(const TomlValue& data, const TomlValue& table, const std::string& name,
                                                  const std::string& prefix, const ComponentFactory& factory,
                                                  Sharding sharding, Diagnostics& diagnostics);

// The ranges of the [data] table's own settings (threads, prefetch, read_timeout_s); called by
// validate_host_tables once the table fits its schema.
void check_data_table(const TomlValue& data, Diagnostics& diagnostics);

}  // namespace ssld::host
