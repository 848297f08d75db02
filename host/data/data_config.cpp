#include "data/data_config.hpp"

#include "config/toml_options.hpp"
#include "core/cpu_budget.hpp"
#include "data/image_decode.hpp"
#include "plugin/builtin_components.hpp"

#include <ssld/rng.hpp>

#include <c10/core/DeviceType.h>

#include <thread>

namespace ssld::host {

namespace {
// An augmentation's random stream, keyed by its place in the config (pipeline, list, position,
// type) and never by a message's wording: the same text as its label today, by construction
// here so a reworded label cannot change what is drawn.
uint64_t random_stream(const std::string& pipeline, const char* list, size_t position, const std::string& type) {
  return Rng::purpose_of(pipeline + "." + list + "[" + std::to_string(position) + "] (" + type + ")");
}

// Bounds that keep a typo from hanging a sampler or exhausting memory; far above real use.
constexpr int64_t kMaxBatchSize = 1 << 20;
constexpr int64_t kMaxLoaderThreads = 1024;
constexpr int64_t kMaxPrefetch = 1024;
}  // namespace

const Schema& pipeline_schema() {
  static const Schema schema =
      Schema()
          .add_int("batch_size", 64, "samples per batch and rank")
          .add_int("reduced_decode_min_side", 0,
                   "decode JPEGs at 1/2, 1/4 or 1/8 scale while the shorter side stays >= this (0: full size)")
          .require(OptionType::TableList, "sources", "datasets, each [[data.<name>.sources]] with a `type`")
          .optional(OptionType::Table, "sampler", "the sampler, with a `type` (default: random; sequential for val)")
          .optional(OptionType::TableList, "augment", "per-sample augmentations on the CPU, in order")
          .optional(OptionType::TableList, "batch_augment", "batch augmentations on the device, in order");
  return schema;
}

namespace {

const SettingsTable<SourceSettings>& source_table();  // below, beside the schema it makes

std::vector<TomlValue> table_list(const TomlValue& pipeline, const std::string& key) {
  if (!pipeline.contains(key) || !pipeline.at(key).is_array()) return {};
  return pipeline.at(key).as_array();
}

SourceSettings read_source_settings(const TomlValue& table, const std::string& label, int64_t size,
                                    Diagnostics& diagnostics) {
  const TomlOptions options(table, std::make_shared<const Schema>(source_host_schema()), label);
  SourceSettings settings = source_table().read(options);
  settings.label = label;
  if (settings.grayscale && settings.grayscale_to_rgb)
    diagnostics.add(SourcePlace::of(table.at("grayscale")), label + ": grayscale and grayscale_to_rgb exclude each other");
  if (settings.max_bad_fraction < 0 || settings.max_bad_fraction > 1)
    diagnostics.add(SourcePlace::of(table.at("max_bad_fraction")), label + ": max_bad_fraction must lie in [0, 1]");
  if (settings.max_image_pixels <= 0)
    diagnostics.add(SourcePlace::of(table.at("max_image_pixels")), label + ": max_image_pixels must be positive");
  if (table.contains("subset")) {
    const auto subset = options.get_table("subset");
    SubsetSpec spec;
    if (subset->has("range")) spec.range = subset->get_int_list("range");
    if (subset->has("fraction")) spec.fraction = subset->get_float_list("fraction");
    if (subset->has("seed")) {
      spec.shuffled = true;
      spec.seed = subset->get_int("seed");
    }
    try {
      settings.subset = subset_indices(spec, size, settings.subset_description);
    } catch (const Error& error) {
      diagnostics.add(SourcePlace::of(table.at("subset")), label + ": " + error.what());
    }
  }
  return settings;
}

template <class Interface>
std::unique_ptr<Interface> create_as(const ComponentFactory& factory, const TomlValue& table, const std::string& label,
                                     const Schema& host_schema, Diagnostics& diagnostics) {
  auto component = factory.create(kind_of<Interface>(), table, label, host_schema, diagnostics);
  return std::unique_ptr<Interface>(static_cast<Interface*>(component.release()));
}

std::string type_of(const TomlValue& table) {
  return table.is_table() && table.contains("type") && table.at("type").is_string() ? table.at("type").as_string().str
                                                                                     : "?";
}

}  // namespace

const EnumNames<BadImagePolicy> kBadImagePolicyNames = {
    {BadImagePolicy::Fail, "fail"}, {BadImagePolicy::Skip, "skip"}, {BadImagePolicy::Replace, "replace"}};

namespace {
using S = SourceSettings;
const SettingsTable<S>& source_table() {
  static const SettingsTable<S> table =
      SettingsTable<S>()
          .add_table("subset",
                     Schema()
                         .optional(OptionType::IntList, "range", "[begin, end) indices")
                         .optional(OptionType::FloatList, "fraction", "[from, to) as fractions of the size")
                         .optional(OptionType::Int, "seed", "shuffle with this seed before taking the part"),
                     "take part of the dataset: range or fraction, optionally after a seeded shuffle")
          .add("drop_labels", &S::drop_labels, "treat the samples as unlabeled")
          .add("grayscale_to_rgb", &S::grayscale_to_rgb, "repeat a single channel to three")
          .add("grayscale", &S::grayscale, "make RGB images one channel (luma): image files always decode to RGB")
          .add("on_bad_image", &S::on_bad_image, kBadImagePolicyNames, "what to do with an unreadable image")
          .add("max_bad_fraction", &S::max_bad_fraction, "stop the run when more of this source's images are bad")
          .add("max_image_pixels", &S::max_image_pixels,
               "an image whose header claims more pixels is a bad image, refused before decoding (PIL's bound)");
  return table;
}
}  // namespace

const Schema& source_host_schema() { return source_table().schema(); }

const Schema& data_table_schema() {
  static const Schema schema =
      Schema()
          .add_int("threads", 0, "loader threads preparing samples (0: one per CPU core)")
          .add_int("prefetch", 4, "batches prepared ahead of training")
          .add_float("read_timeout_s", 120.0, "fail when no batch arrives for this long (a stuck read)")
          .optional(OptionType::Table, "train", "the training pipeline")
          .optional(OptionType::Table, "val", "the validation pipeline");
  return schema;
}

void check_data_table(const TomlValue& data, Diagnostics& diagnostics) {
  Diagnostics schema_problems;
  validate_options(data, data_table_schema(), "[data]", {}, schema_problems);
  if (!schema_problems.empty()) return;  // validate_host_tables reports those
  const TomlOptions options(data, std::make_shared<const Schema>(data_table_schema()), "[data]");
  auto problem = [&](const char* key, const std::string& message) {
    diagnostics.add(SourcePlace::of(data.contains(key) ? data.at(key) : data), std::string("[data] ") + key + ": " + message);
  };
  const int64_t threads = options.get_int("threads"), prefetch = options.get_int("prefetch");
  if (threads < 0 || threads > kMaxLoaderThreads)
    problem("threads", "must lie in [0, " + std::to_string(kMaxLoaderThreads) + "] (0: one per CPU core)");
  if (prefetch < 1 || prefetch > kMaxPrefetch) problem("prefetch", "must lie in [1, " + std::to_string(kMaxPrefetch) + "]");
  if (options.get_float("read_timeout_s") <= 0) problem("read_timeout_s", "must be positive");
}

int64_t DataPipeline::num_classes() const {
  int64_t classes = 0;
  for (const auto& source : sources) classes = std::max(classes, source->num_classes());
  return classes;
}

std::unique_ptr<DataPipeline> build_pipeline(const TomlValue& root, const std::string& name,
                                             const ComponentFactory& factory, Sharding sharding,
                                             Diagnostics& diagnostics) {
  if (!root.contains("data") || !root.at("data").is_table() || !root.at("data").contains(name)) return nullptr;
  return build_pipeline_from(root.at("data"), root.at("data").at(name), name, "data." + name, factory, sharding,
                             diagnostics);
}

std::unique_ptr<DataPipeline> build_pipeline_from(const TomlValue& data, const TomlValue& table, const std::string& name,
                                                  const std::string& prefix, const ComponentFactory& factory,
                                                  Sharding sharding, Diagnostics& diagnostics) {
  const size_t problems_before = diagnostics.items().size();
  validate_options(table, pipeline_schema(), "[" + prefix + "]", {}, diagnostics);
  if (diagnostics.items().size() != problems_before) return nullptr;

  auto pipeline = std::make_unique<DataPipeline>();
  pipeline->name = name;
  const TomlOptions options(table, std::make_shared<const Schema>(pipeline_schema()), "[" + prefix + "]");
  pipeline->batch_size = options.get_int("batch_size");
  if (pipeline->batch_size <= 0 || pipeline->batch_size > kMaxBatchSize)
    diagnostics.add(SourcePlace::of(table.contains("batch_size") ? table.at("batch_size") : table),
                    prefix + ": batch_size must lie in [1, " + std::to_string(kMaxBatchSize) + "]");

  const auto sources = table_list(table, "sources");
  if (sources.empty()) diagnostics.add(SourcePlace::of(table), prefix + " needs at least one [[" + prefix + ".sources]]");
  for (size_t i = 0; i < sources.size(); ++i) {
    const std::string label = prefix + ".sources[" + std::to_string(i) + "] (" + type_of(sources[i]) + ")";
    auto dataset = create_as<Dataset>(factory, sources[i], label, source_host_schema(), diagnostics);
    if (!dataset) continue;
    const int64_t size = dataset->size();
    SourceSettings settings = read_source_settings(sources[i], label, size, diagnostics);
    pipeline->sources.push_back(std::make_unique<DatasetView>(std::move(dataset), std::move(settings)));
  }

  TomlValue sampler_table = table.contains("sampler") ? table.at("sampler")
                                                      : TomlValue(TomlTable{{"type", name == "val" ? builtin::kSequentialSampler
                                                                                        : builtin::kRandomSampler}});
  pipeline->sampler = create_as<Sampler>(factory, sampler_table, prefix + ".sampler", Schema(), diagnostics);

  const auto augmentations = table_list(table, "augment");
  for (size_t i = 0; i < augmentations.size(); ++i) {
    const std::string label = prefix + ".augment[" + std::to_string(i) + "] (" + type_of(augmentations[i]) + ")";
    if (auto made = create_as<Augmentation>(factory, augmentations[i], label, Schema(), diagnostics))
      pipeline->augmentations.push_back(AugmentationStep{
          std::move(made), label, random_stream(prefix, "augment", i, type_of(augmentations[i]))});
  }
  const auto batch_augmentations = table_list(table, "batch_augment");
  for (size_t i = 0; i < batch_augmentations.size(); ++i) {
    const std::string label = prefix + ".batch_augment[" + std::to_string(i) + "] (" + type_of(batch_augmentations[i]) + ")";
    if (auto made = create_as<BatchAugmentation>(factory, batch_augmentations[i], label, Schema(), diagnostics))
      pipeline->batch_augmentations.push_back(BatchAugmentationStep{
          std::move(made), label, random_stream(prefix, "batch_augment", i, type_of(batch_augmentations[i]))});
  }
  if (diagnostics.items().size() != problems_before) return nullptr;

  std::vector<const Dataset*> views;
  std::vector<const DatasetView*> source_views;
  for (const auto& source : pipeline->sources) {
    views.push_back(source.get());
    source_views.push_back(source.get());
  }
  try {
    pipeline->sampler->bind(SamplerSetup{views, pipeline->batch_size, sharding.rank, sharding.world_size, factory.seed()});
  } catch (const std::exception& error) {
    diagnostics.add(SourcePlace::of(table.contains("sampler") ? table.at("sampler") : table),
                    prefix + ".sampler: " + error.what());
    return nullptr;
  }
  pipeline->samples = std::make_unique<SamplePipeline>(source_views, pipeline->augmentations, factory.seed(),
                                                       options.get_int("reduced_decode_min_side"));

  Diagnostics data_schema_problems;  // reported by validate_host_tables; the defaults stand in here
  validate_options(data, data_table_schema(), "[data]", {}, data_schema_problems);
  const TomlOptions data_options(data_schema_problems.empty() ? data : TomlValue(TomlTable{}),
                                 std::make_shared<const Schema>(data_table_schema()), "[data]");
  const int64_t threads = data_options.get_int("threads");
  const int64_t prefetch = data_options.get_int("prefetch");
  if (threads < 0 || threads > kMaxLoaderThreads || prefetch < 1 || prefetch > kMaxPrefetch) return nullptr;
  pipeline->loader.threads = threads > 0 ? static_cast<int>(threads) : cpu_budget().threads;
  pipeline->loader.prefetch = static_cast<int>(prefetch);
  pipeline->loader.read_timeout_s = data_options.get_float("read_timeout_s");
  pipeline->loader.pin_memory = factory.device().is_cuda();
  return pipeline;
}

}  // namespace ssld::host
