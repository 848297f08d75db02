#include "sweep/sweep_plan.hpp"

#include "config/diagnostics.hpp"
#include "config/key_path.hpp"
#include "stage/config_schema.hpp"

#include <ssld/rng.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>

namespace ssld::host {

namespace {

std::vector<std::string> top_level_keys() {
  std::vector<std::string> keys;
  for (const auto& table : host_tables()) keys.push_back(table.key);
  for (const auto& slot : component_slots()) keys.push_back(slot.key);
  keys.push_back("stage");
  return keys;
}

std::string canonical_text(const TomlValue& value);

std::vector<int64_t> read_seeds(const TomlValue& sweep) {
  std::vector<int64_t> seeds;
  if (!sweep.contains("seeds")) return seeds;
  const TomlValue& list = sweep.at("seeds");
  if (!list.is_array()) throw ConfigError(SourcePlace::of(list), "[sweep] seeds must be a list of integers, e.g. [0, 1]");
  for (const auto& seed : list.as_array()) {
    if (!seed.is_integer()) throw ConfigError(SourcePlace::of(seed), "[sweep] seeds must be integers");
    if (std::find(seeds.begin(), seeds.end(), seed.as_integer()) != seeds.end())
      throw ConfigError(SourcePlace::of(seed), "[sweep] seeds lists " + std::to_string(seed.as_integer()) + " twice");
    seeds.push_back(seed.as_integer());
  }
  if (seeds.empty()) throw ConfigError(SourcePlace::of(list), "[sweep] seeds is empty: leave it out to keep [run] seed");
  return seeds;
}

// Axis keys and values; `grid`: a value repeated on one axis would give two runs the same
// assignment (in zip mode only the paired positions must differ; checked by the caller).
std::vector<SweepAxis> read_axes(const TomlValue& sweep, bool grid) {
  std::vector<SweepAxis> axes;
  if (!sweep.contains("axes")) return axes;
  const TomlValue& table = sweep.at("axes");
  if (!table.is_table())
    throw ConfigError(SourcePlace::of(table), "[sweep.axes] must be a table of \"key.path\" = [values...]");
  for (const auto& [key, values] : table.as_table()) {
    const SourcePlace place = SourcePlace::of(values);
    split_key_path(key, place, "sweep axis: ");
    if (!values.is_array())
      throw ConfigError(place, "sweep axis '" + key + "' must be a list of the values it takes, found " +
                                   toml_type_name(values));
    if (values.as_array().empty()) throw ConfigError(place, "sweep axis '" + key + "' has no values");
    std::vector<std::string> seen;
    for (const auto& value : values.as_array()) {
      if (!grid) break;
      const std::string text = canonical_text(value);
      if (std::find(seen.begin(), seen.end(), text) != seen.end())
        throw ConfigError(SourcePlace::of(value), "sweep axis '" + key + "' lists " + axis_value_text(value) + " twice");
      seen.push_back(text);
    }
    axes.push_back(SweepAxis{key, values.as_array(), place});
  }
  return axes;
}

// The exact text that identifies a value: TOML's own formatting of it, which is deterministic
// because the host's tables are sorted.
std::string canonical_text(const TomlValue& value) {
  std::string text = toml::format(value);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string slug_of(const std::string& text) {
  std::string slug;
  for (const char c : text) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || std::string("._+=,-").find(c) != std::string::npos;
    slug += keep ? c : '_';
  }
  constexpr size_t kMaxSlug = 80;  // folder names stay readable; the hash keeps them unique
  if (slug.size() > kMaxSlug) slug.resize(kMaxSlug);
  return slug;
}

// Labels of every axis: [sweep.labels] where given (one distinct, non-empty string per value),
// otherwise each value's short text, numbered by position where different values read alike.
void label_axes(const TomlValue& sweep, std::vector<SweepAxis>& axes) {
  for (auto& axis : axes) {
    std::vector<std::string> exact;
    for (const auto& value : axis.values) {
      axis.labels.push_back(axis_value_text(value));
      exact.push_back(canonical_text(value));
    }
    const std::vector<std::string> texts = axis.labels;
    for (size_t i = 0; i < texts.size(); ++i)
      for (size_t j = 0; j < texts.size(); ++j)
        if (texts[i] == texts[j] && exact[i] != exact[j]) {
          axis.labels[i] += "#" + std::to_string(i + 1);
          break;
        }
  }
  if (!sweep.contains("labels")) return;
  const TomlValue& table = sweep.at("labels");
  if (!table.is_table())
    throw ConfigError(SourcePlace::of(table), "[sweep.labels] must be a table of \"key.path\" = [\"name\", ...]");
  for (const auto& [key, names] : table.as_table()) {
    const auto axis = std::find_if(axes.begin(), axes.end(), [&key = key](const SweepAxis& a) { return a.key == key; });
    if (axis == axes.end())
      throw ConfigError(SourcePlace::of(names), "[sweep.labels] names the values of '" + key +
                                                    "', which is not an axis in [sweep.axes]");
    const std::string count = std::to_string(axis->values.size());
    if (!names.is_array() || names.as_array().size() != axis->values.size())
      throw ConfigError(SourcePlace::of(names), "[sweep.labels] '" + key + "' must list one name per value of the axis (" +
                                                    count + " strings)");
    std::vector<std::string> labels;
    for (const auto& name : names.as_array()) {
      if (!name.is_string() || name.as_string().str.empty())
        throw ConfigError(SourcePlace::of(name), "[sweep.labels] '" + key + "': every name must be a non-empty string");
      if (std::find(labels.begin(), labels.end(), name.as_string().str) != labels.end())
        throw ConfigError(SourcePlace::of(name), "[sweep.labels] '" + key + "' lists '" + name.as_string().str +
                                                     "' twice: the tables could not tell the values apart");
      labels.push_back(name.as_string().str);
    }
    axis->labels = std::move(labels);
  }
}

}  // namespace

SweepSpec read_sweep_spec(const TomlValue& root) {
  if (!root.is_table() || !root.contains("sweep"))
    throw ConfigError(SourcePlace::of(root), "this config has no [sweep] table: add [sweep.axes] (see README, \"Sweeps\")");
  const TomlValue& sweep = root.at("sweep");
  if (!sweep.is_table()) throw ConfigError(SourcePlace::of(sweep), "[sweep] must be a table");
  SweepSpec spec;
  if (sweep.contains("mode")) {
    const TomlValue& mode = sweep.at("mode");
    if (!mode.is_string() || (mode.as_string().str != "grid" && mode.as_string().str != "zip"))
      throw ConfigError(SourcePlace::of(mode), "[sweep] mode is \"grid\" (every combination) or \"zip\" (paired lists)");
    spec.mode = mode.as_string().str;
  }
  spec.seeds = read_seeds(sweep);
  spec.axes = read_axes(sweep, spec.mode == "grid");
  label_axes(sweep, spec.axes);
  if (spec.axes.empty() && spec.seeds.empty())
    throw ConfigError(SourcePlace::of(sweep), "[sweep] needs [sweep.axes] or seeds: there is nothing to vary");
  if (spec.mode == "zip") {
    for (const auto& axis : spec.axes) {
      const auto& first = spec.axes.front();
      if (axis.values.size() != first.values.size())
        throw ConfigError(axis.place, "zip mode pairs the axes' values, so every axis needs the same length: '" +
                                          first.key + "' has " + std::to_string(first.values.size()) + ", '" +
                                          axis.key + "' has " + std::to_string(axis.values.size()) +
                                          " (use mode = \"grid\" for every combination)");
    }
    std::vector<std::string> seen;  // a repeated position would give two runs the same assignment
    for (size_t i = 0; !spec.axes.empty() && i < spec.axes.front().values.size(); ++i) {
      std::string text;
      for (const auto& axis : spec.axes) text += canonical_text(axis.values[i]) + "\n";
      if (std::find(seen.begin(), seen.end(), text) != seen.end())
        throw ConfigError(spec.axes.front().place, "zip position " + std::to_string(i) +
                                                       " repeats an earlier one: two runs would be the same");
      seen.push_back(text);
    }
  }
  return spec;
}

std::vector<SweepRun> expand_sweep(const SweepSpec& spec) {
  std::vector<std::vector<AxisValue>> assignments;
  if (spec.axes.empty()) {
    assignments.emplace_back();
  } else if (spec.mode == "zip") {
    for (size_t i = 0; i < spec.axes.front().values.size(); ++i) {
      std::vector<AxisValue> assignment;
      for (const auto& axis : spec.axes) assignment.push_back(AxisValue{axis.key, axis.values[i], axis.labels[i]});
      assignments.push_back(std::move(assignment));
    }
  } else {
    std::vector<size_t> position(spec.axes.size(), 0);  // an odometer over the axes, last fastest
    while (true) {
      std::vector<AxisValue> assignment;
      for (size_t a = 0; a < spec.axes.size(); ++a)
        assignment.push_back(
            AxisValue{spec.axes[a].key, spec.axes[a].values[position[a]], spec.axes[a].labels[position[a]]});
      assignments.push_back(std::move(assignment));
      size_t a = spec.axes.size();
      while (a > 0 && ++position[a - 1] == spec.axes[a - 1].values.size()) position[--a] = 0;
      if (a == 0) break;
    }
  }
  std::vector<std::optional<int64_t>> seeds;
  if (spec.seeds.empty()) seeds.push_back(std::nullopt);
  for (const int64_t seed : spec.seeds) seeds.push_back(seed);

  std::vector<SweepRun> runs;
  for (const auto& assignment : assignments)
    for (const auto& seed : seeds) runs.push_back(SweepRun{sweep_run_id(assignment, seed), assignment, seed});
  return runs;
}

std::string axis_value_text(const TomlValue& value) {
  if (value.is_string()) return value.as_string().str;
  if (value.is_table()) return value.contains("type") ? axis_value_text(value.at("type")) : "table";
  if (value.is_floating()) {
    char text[32];
    std::snprintf(text, sizeof(text), "%g", value.as_floating());
    return text;
  }
  if (value.is_array()) {
    std::string text = "[";
    for (const auto& item : value.as_array()) text += (text.size() > 1 ? "," : "") + axis_value_text(item);
    return text + "]";
  }
  return canonical_text(value);
}

std::string sweep_run_id(const std::vector<AxisValue>& assignment, std::optional<int64_t> seed) {
  std::vector<AxisValue> sorted = assignment;
  std::sort(sorted.begin(), sorted.end(), [](const AxisValue& a, const AxisValue& b) { return a.key < b.key; });
  std::string readable, canonical;
  for (const AxisValue& axis_value : sorted) {  // the values themselves, never the labels: ids stay put
    readable += (readable.empty() ? "" : ",") + axis_value.key + "=" + axis_value_text(axis_value.value);
    canonical += axis_value.key + "=" + canonical_text(axis_value.value) + "\n";
  }
  if (seed) {
    readable += (readable.empty() ? "" : ",") + std::string("seed=") + std::to_string(*seed);
    canonical += "seed=" + std::to_string(*seed) + "\n";
  }
  char hash[9];
  std::snprintf(hash, sizeof(hash), "%08x", static_cast<unsigned>(Rng::purpose_of(canonical) & 0xffffffffu));
  return (readable.empty() ? std::string("run") : slug_of(readable)) + "-" + hash;
}

void set_config_value(TomlValue& root, const std::string& key, const TomlValue& value, const SourcePlace& place) {
  const std::string prefix = "sweep axis '" + key + "' does not resolve: ";
  const std::vector<std::string> parts = split_key_path(key, place, "sweep axis: ");
  if (!root.contains(parts.front())) {
    const std::vector<std::string> known = top_level_keys();
    if (std::find(known.begin(), known.end(), parts.front()) == known.end())
      throw ConfigError(place, prefix + "'" + parts.front() + "' is not a top-level key of a config" +
                                   did_you_mean(parts.front(), known));
  }
  // A table value replaces the table whole, like a list does.
  value_at_key_path(root, parts, place, KeyPathWalk{true, prefix}) = value;
}

TomlValue sweep_run_config(const TomlValue& root, const SweepSpec& spec, const SweepRun& run) {
  TomlValue config = root;
  config.as_table().erase("sweep");
  for (const AxisValue& axis_value : run.assignment) {
    const auto axis = std::find_if(spec.axes.begin(), spec.axes.end(),
                                   [&](const SweepAxis& a) { return a.key == axis_value.key; });
    set_config_value(config, axis_value.key, axis_value.value,
                     axis != spec.axes.end() ? axis->place : SourcePlace::of(axis_value.value));
  }
  if (run.seed) set_config_value(config, "run.seed", TomlValue(static_cast<toml::integer>(*run.seed)), SourcePlace{});
  Diagnostics diagnostics;
  validate_host_tables(config, diagnostics);
  diagnostics.throw_if_any();
  return config;
}

}  // namespace ssld::host
