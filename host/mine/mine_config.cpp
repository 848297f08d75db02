#include "mine/mine_config.hpp"

#include "config/toml_options.hpp"
#include "plugin/builtin_components.hpp"

namespace ssld::host {

const Schema& mine_table_schema() {
  static const Schema schema =
      Schema()
          .require(OptionType::TableList, "sources",
                   "the candidate images: dataset tables, [[mine.sources]] with a `type` (labels are ignored)")
          .add_int("batch_size", 256, "candidates per teacher forward")
          .add_int("reduced_decode_min_side", 0, "decode big JPEGs at 1/2..1/8 scale, shorter side kept >= this")
          .optional(OptionType::TableList, "augment",
                    "per-sample transforms before the teacher (default: data.val's augment)")
          .optional(OptionType::TableList, "batch_augment",
                    "batch transforms before the teacher (default: data.val's batch_augment, e.g. normalize)")
          .add_string("score", "max_probability",
                      "how sure the teacher is: max_probability (p1), margin (p1 - p2), entropy (1 - H(p)/ln C), "
                      "random (a uniform draw per sample: a random subset for comparisons)",
                      {"max_probability", "margin", "entropy", "random"})
          .add_int("top_k_per_class", 1000, "keep at most this many candidates per predicted class (0: no limit)")
          .add_float("min_confidence", 0.0, "reject candidates whose score is below this")
          .add_int("max_total", 0, "keep at most this many candidates in all (0: no limit)")
          .add_string("class_balance", "none",
                      "none: max_total keeps the best overall; equal: max_total split equally between the classes; "
                      "strict: as equal, then every class cut to the smallest non-empty class",
                      {"none", "equal", "strict"})
          .add_int_list("classes", {}, "keep only candidates the teacher puts in these classes (empty: all)")
          .optional(OptionType::Path, "output",
                    "folder for the list, summary and state (default: <output_dir>/<run name>/mine)")
          .add_int("checkpoint_every", 20, "batches between resumable state files (written atomically)")
          .add_int("histogram_bins", 10, "bins of the confidence histogram over [0, 1]")
          .add_table("dedup",
                     Schema()
                         .add_string("method", "phash",
                                     "how near-duplicates of protected images are found: none, phash (perceptual "
                                     "hash), feature (teacher-feature cosine), both",
                                     {"none", "phash", "feature", "both"})
                         .add_int("max_hamming", 8, "phash: at most this many of the 64 bits differ for a duplicate")
                         .add_float("min_correlation", 0.98,
                                    "phash: and the 16x16 grayscale thumbnails correlate at least this much")
                         .add_string("feature", "", "feature: the teacher's named feature to compare")
                         .add_float("min_cosine", 0.95, "feature: a cosine similarity at least this is a duplicate"),
                     "near-duplicates of the protected images are removed")
          .add_table("protected",
                     Schema().optional(OptionType::TableList, "sources",
                                       "dataset tables, [[mine.protected.sources]] (default: data.val's sources)"),
                     "the images that mined images must not duplicate");
  return schema;
}

MineSettings read_mine_settings(const TomlValue& root, Diagnostics& diagnostics) {
  const TomlValue& table = root.at("mine");
  const TomlOptions options(table, std::make_shared<const Schema>(mine_table_schema()), "[mine]");
  auto problem = [&](const TomlValue& where, const std::string& key, const std::string& message) {
    diagnostics.add(SourcePlace::of(where.contains(key) ? where.at(key) : where), "[mine] " + key + ": " + message);
  };
  MineSettings settings;
  SelectionSettings& selection = settings.selection;
  selection.score = score_kind_of(options.get_string("score"));
  selection.top_k_per_class = options.get_int("top_k_per_class");
  selection.min_confidence = options.get_float("min_confidence");
  selection.max_total = options.get_int("max_total");
  selection.balance = class_balance_of(options.get_string("class_balance"));
  selection.classes = options.get_int_list("classes");
  if (options.has("output")) settings.output = options.get_string("output");
  settings.checkpoint_every = options.get_int("checkpoint_every");
  settings.histogram_bins = options.get_int("histogram_bins");
  if (options.get_int("batch_size") <= 0) problem(table, "batch_size", "must be positive");
  if (selection.top_k_per_class < 0) problem(table, "top_k_per_class", "must be >= 0 (0: no limit)");
  if (selection.max_total < 0) problem(table, "max_total", "must be >= 0 (0: no limit)");
  if (selection.min_confidence < 0 || selection.min_confidence > 1)
    problem(table, "min_confidence", "scores lie in [0, 1]");
  for (const int64_t c : selection.classes)
    if (c < 0) problem(table, "classes", "class indices are >= 0");
  if (selection.balance != ClassBalance::None && selection.max_total == 0 && selection.top_k_per_class == 0)
    problem(table, "class_balance", "balancing needs top_k_per_class or max_total");
  if (settings.checkpoint_every <= 0) problem(table, "checkpoint_every", "must be positive");
  if (settings.histogram_bins <= 0) problem(table, "histogram_bins", "must be positive");

  const auto dedup = options.get_table("dedup");
  const std::string method = dedup->get_string("method");
  settings.dedup.phash = method == "phash" || method == "both";
  settings.dedup.feature = method == "feature" || method == "both";
  settings.dedup.max_hamming = dedup->get_int("max_hamming");
  settings.dedup.feature_name = dedup->get_string("feature");
  settings.dedup.min_cosine = dedup->get_float("min_cosine");
  settings.dedup.min_correlation = dedup->get_float("min_correlation");
  const TomlValue dedup_table = table.contains("dedup") ? table.at("dedup") : table;
  if (settings.dedup.max_hamming < 0 || settings.dedup.max_hamming > 64)
    problem(dedup_table, "max_hamming", "must lie in [0, 64]");
  if (settings.dedup.min_correlation < -1 || settings.dedup.min_correlation > 1)
    problem(dedup_table, "min_correlation", "a correlation lies in [-1, 1]");
  if (settings.dedup.feature && settings.dedup.feature_name.empty())
    problem(dedup_table, "feature", "method \"" + method + "\" needs the name of a teacher feature");
  if (settings.dedup.enabled() && !protected_pipeline_table(root))
    problem(dedup_table, "method", "nothing to protect: add [[mine.protected.sources]] or [data.val], or method = \"none\"");

  for (const auto& source : table.at("sources").as_array())
    if (source.is_table() && source.contains("on_bad_image") && source.at("on_bad_image").is_string() &&
        source.at("on_bad_image").as_string().str == "replace")
      problem(source, "on_bad_image",
              "mining skips bad images (a replacement would be listed under the bad file's name): use \"skip\" or \"fail\"");
  return settings;
}

namespace {

const TomlValue* val_pipeline(const TomlValue& root) {
  if (!root.contains("data") || !root.at("data").is_table() || !root.at("data").contains("val")) return nullptr;
  const TomlValue& val = root.at("data").at("val");
  return val.is_table() ? &val : nullptr;
}

// A sequential pipeline over `sources`, transformed like data.val unless [mine] says otherwise.
TomlValue sequential_pipeline(const TomlValue& root, const TomlValue& sources) {
  const TomlValue& mine = root.at("mine");
  const TomlValue* val = val_pipeline(root);
  TomlTable pipeline;
  for (const char* key : {"batch_size", "reduced_decode_min_side"})
    if (mine.contains(key)) pipeline[key] = mine.at(key);
  if (!mine.contains("batch_size")) pipeline["batch_size"] = 256;
  TomlValue list = sources;
  if (list.is_array())
    for (auto& source : list.as_array())
      if (source.is_table() && !source.contains("on_bad_image")) source.as_table()["on_bad_image"] = "skip";
  pipeline["sources"] = list;
  pipeline["sampler"] = TomlTable{{"type", builtin::kSequentialSampler}};
  for (const char* key : {"augment", "batch_augment"}) {
    if (mine.contains(key)) pipeline[key] = mine.at(key);
    else if (val && val->contains(key)) pipeline[key] = val->at(key);
  }
  return TomlValue(pipeline);
}

}  // namespace

TomlValue candidate_pipeline_table(const TomlValue& root) { return sequential_pipeline(root, root.at("mine").at("sources")); }

std::optional<TomlValue> protected_pipeline_table(const TomlValue& root) {
  const TomlValue& mine = root.at("mine");
  if (mine.contains("protected") && mine.at("protected").is_table() && mine.at("protected").contains("sources"))
    return sequential_pipeline(root, mine.at("protected").at("sources"));
  if (const TomlValue* val = val_pipeline(root); val && val->contains("sources"))
    return sequential_pipeline(root, val->at("sources"));
  return std::nullopt;
}

}  // namespace ssld::host
