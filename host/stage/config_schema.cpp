#include "stage/config_schema.hpp"

#include "config/settings_table.hpp"
#include "config/toml_options.hpp"
#include "data/data_config.hpp"
#include "dist/data_parallel.hpp"
#include "mine/mine_config.hpp"
#include "teacher_cache/teacher_cache.hpp"
#include "train/train_settings.hpp"

#include <regex>

namespace ssld::host {

namespace {
using R = RunSettings;
const SettingsTable<R>& run_table() {
  static const SettingsTable<R> table =
      SettingsTable<R>()
          .add("name", &R::name, "name of the run; its output folder is <output_dir>/<name>")
          .add_path("output_dir", &R::output_dir, "folder that holds run folders")
          .add("seed", &R::seed, "seed of every random stream (augmentations, sampling, initialization)")
          .add("device", &R::device, "\"auto\" (CUDA when available), \"cpu\", \"cuda\" or \"cuda:N\"")
          .add("threads", &R::threads, "libtorch's intra-op CPU threads (0: one per core)");
  return table;
}
}  // namespace

const std::vector<HostTable>& host_tables() {
  static const std::vector<HostTable> tables = {
      {"run", "what the run is called, where it writes, its seed and device", run_table().schema()},
      {"data", "the data pipelines: data.train and data.val", data_table_schema()},
      {"train", "optimizer, schedule, epochs, EMA, evaluation cadence", train_table_schema()},
      {"teacher_cache", "store the teacher's soft labels and reuse them in later runs (sweeps, `ssld cache-teacher`)",
       teacher_cache_table_schema()},
      {"sweep", "`ssld sweep`: the axes to vary and the seeds; `ssld train` trains the config without them",
       Schema()
           .add_string("mode", "grid", "grid: every combination of the axes' values; zip: the i-th values together",
                       {"grid", "zip"})
           .add_int_list("seeds", {}, "run every combination once per seed, setting [run] seed (empty: [run] seed)")
           .add_spec(OptionSpec{"axes", OptionType::Table,
                                "\"key.path\" = [values...]: the config keys to vary (\"loss.0.type\", \"student.width\", "
                                "\"teacher\" with whole tables)",
                                false, std::nullopt, {}, nullptr})
           .add_spec(OptionSpec{"labels", OptionType::Table,
                                "\"key.path\" = [\"name\", ...]: one name per value of that axis, used in listings, "
                                "tables and plots instead of the value's short text",
                                false, std::nullopt, {}, nullptr})},
      {"mine", "`ssld mine`: the candidates the teacher chooses from, what to keep, what to protect, where to write",
       mine_table_schema()},
      {"dist", "multi-process data-parallel runs (torchrun's RANK, WORLD_SIZE, ...): timeouts, gradient buckets, "
               "BatchNorm statistics; ignored by a single process",
       dist_table_schema()},
      {"plugins", "where to find plugin libraries beyond the built-in ones",
       Schema().add_path_list("paths", {}, "plugin files or folders of *.so, relative to this config")},
  };
  return tables;
}

const std::vector<ComponentSlot>& component_slots() {
  static const std::vector<ComponentSlot> slots = {
      {"student", Kind::Student, false,
       Schema()
           .optional(OptionType::Path, "weights",
                     "start from these weights: .safetensors, or .pth/.pt from torch.save (a state dict or a checkpoint)")
           .add_bool("strict", true, "every tensor name on both sides (false: load the names they share)")
           .add_string_list("ignore", {}, "glob patterns of names to leave as initialized, e.g. [\"fc.*\"] for a new head")
           .optional(OptionType::String, "init_from", "[[stage]] only: start from the weights of this earlier stage"),
       "the model being trained"},
      {"teacher", Kind::Teacher, false, Schema(), "the frozen model whose predictions are learned"},
      {"loss", Kind::Loss, true,
       Schema()
           .add_float("weight", 1.0, "factor of this term in the total loss")
           .add_float("lr_scale", 1.0, "the loss's own parameters (a connector) learn at [train] lr times this"),
       "loss terms; the objective is their weighted sum"},
  };
  return slots;
}

void validate_host_tables(const TomlValue& root, Diagnostics& diagnostics) {
  std::vector<std::string> known;
  for (const auto& table : host_tables()) known.push_back(table.key);
  for (const auto& slot : component_slots()) known.push_back(slot.key);
  known.push_back("stage");
  for (const auto& [key, value] : root.as_table()) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    diagnostics.add(SourcePlace::of(value), "unknown top-level key '" + key + "'" + did_you_mean(key, known) +
                                                " (a config has: base, run, plugins, data, train, student, teacher, teacher_cache, loss, stage, sweep, mine, dist)");
  }
  for (const auto& table : host_tables()) {
    if (!root.contains(table.key)) continue;
    validate_options(root.at(table.key), table.schema, "[" + table.key + "]", {}, diagnostics);
  }
  if (root.contains("data")) check_data_table(root.at("data"), diagnostics);
  if (root.contains("run") && root.at("run").is_table() && root.at("run").contains("name")) {
    const TomlValue& name = root.at("run").at("name");
    // The run's folder is named after it: one plain folder name the filesystem accepts.
    if (name.is_string() && (name.as_string().str.empty() || name.as_string().str.size() > 200 ||
                             name.as_string().str.find('/') != std::string::npos ||
                             name.as_string().str == "." || name.as_string().str == ".."))
      diagnostics.add(SourcePlace::of(name), "[run] name must be a plain folder name of 1 to 200 bytes without '/'");
  }
  if (root.contains("run") && root.at("run").is_table() && root.at("run").contains("device")) {
    const TomlValue& device = root.at("run").at("device");
    static const std::regex pattern("auto|cpu|cuda(:[0-9]+)?");
    if (device.is_string() && !std::regex_match(device.as_string().str, pattern))
      diagnostics.add(SourcePlace::of(device), "device '" + device.as_string().str +
                                                   "' is not one of auto, cpu, cuda, cuda:N");
  }
}

namespace {
const HostTable& host_table(const std::string& key) {
  for (const auto& table : host_tables())
    if (table.key == key) return table;
  throw std::logic_error("no host table " + key);
}

TomlOptions host_options(const TomlValue& root, const std::string& key) {
  const HostTable& table = host_table(key);
  const TomlValue value = root.contains(key) && root.at(key).is_table() ? root.at(key) : TomlValue(TomlTable{});
  return TomlOptions(value, std::make_shared<const Schema>(table.schema), "[" + key + "]");
}
}  // namespace

RunSettings read_run_settings(const TomlValue& root) { return run_table().read(host_options(root, "run")); }

std::vector<std::string> config_plugin_paths(const TomlValue& root) {
  Diagnostics problems;
  if (!root.contains("plugins")) return {};
  validate_options(root.at("plugins"), host_table("plugins").schema, "[plugins]", {}, problems);
  if (!problems.empty()) return {};
  return host_options(root, "plugins").get_string_list("paths");
}

void strip_student_host_keys(TomlTable& student) {
  for (const auto& slot : component_slots())
    if (slot.key == "student")
      for (const auto& spec : slot.host_schema.options()) student.erase(spec.name);
  student.erase("init_which");  // read with init_from by the stage resolver
}

}  // namespace ssld::host
