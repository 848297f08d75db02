#include "stage/stage_runner.hpp"

#include "config/config_loader.hpp"
#include "core/atomic_file.hpp"
#include "core/bounded_input.hpp"
#include "stage/assembly.hpp"
#include "train/run_plots.hpp"
#include "train/trainer.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <sstream>

namespace ssld::host {

namespace {

// --set values are kept as their text until validation; the identity uses the values they
// spell, so `--set train.lr=0.05` and `lr = 0.05` in the file are the same config.
void parse_override_texts(TomlValue& value) {
  TomlValue parsed;
  if (is_override_text(value) && parse_override_text(value, parsed)) value = parsed;
  if (value.is_array())
    for (auto& item : value.as_array()) parse_override_texts(item);
  else if (value.is_table())
    for (auto& [key, item] : value.as_table()) parse_override_texts(item);
}

// The stage config as checkpoints identify it: without the keys that cannot change what is
// learned (loader threads and prefetch, the log and checkpoint cadence, [dist]'s timeouts and
// buckets), so a resume may change those.
TomlValue without_result_neutral_keys(TomlValue config) {
  if (!config.is_table()) return config;
  parse_override_texts(config);
  TomlTable& root = config.as_table();
  root.erase("dist");
  auto erase = [&](const char* table, std::initializer_list<const char*> keys) {
    auto found = root.find(table);
    if (found == root.end() || !found->second.is_table()) return;
    for (const char* key : keys) found->second.as_table().erase(key);
  };
  erase("data", {"threads", "prefetch", "read_timeout_s"});
  erase("train", {"log_every", "checkpoint_every_steps"});
  return config;
}

nlohmann::json to_json(const StageResult& result) {
  return {{"best_top1", result.best_top1}, {"best_top5", result.best_top5}, {"final_top1", result.final_top1},
          {"final_top5", result.final_top5}, {"ema_top1", result.ema_top1},   {"ema_top5", result.ema_top5},
          {"teacher_top1", result.teacher_top1}, {"teacher_top5", result.teacher_top5}, {"seconds", result.seconds},
          {"images_per_second", result.images_per_second}, {"skipped_steps", result.skipped_steps},
          {"overflow_steps", result.overflow_steps},
          {"teacher_share", result.teacher_share}};
}

std::string percent(double value) {
  if (value < 0) return "-";
  char text[16];
  std::snprintf(text, sizeof(text), "%.2f", value);
  return text;
}

std::string type_of(const TomlValue& config, const std::string& key) {
  if (!config.contains(key) || !config.at(key).contains("type")) return "";
  std::string type = config.at(key).at("type").as_string().str;
  if (key == "teacher" && config.at(key).contains("student") && config.at(key).at("student").contains("type"))
    type += " (" + config.at(key).at("student").at("type").as_string().str + ")";
  return type;
}

// The row of a stage an earlier invocation finished, from its summary.json.
void read_summary(const std::filesystem::path& path, const std::string& stage, StageRow& row) {
  try {
    const nlohmann::json summary = read_json_file(path, "stage summary");
    row.losses = summary.value("losses", "");
    row.images = summary.value("train_images", int64_t{0});
    row.labels = summary.value("labels_used", int64_t{0});
    row.result = summary.at("result");
    if (!row.result.is_object()) throw Error("its 'result' is not an object");
  } catch (const std::exception& error) {  // a damaged file: nlohmann's type and key errors too
    throw Error("stage '" + stage + "' has a damaged " + path.string() + " (" + error.what() +
                "): delete it to train the stage again, or start over with --restart");
  }
}

}  // namespace

StageRunner::StageRunner(ComponentFactory& factory, c10::Device device, uint64_t seed, StageRunOptions options)
    : factory_(factory), device_(device), seed_(seed), options_(std::move(options)) {}

StageRow StageRunner::run(const PlannedStage& planned, size_t position, size_t count, Diagnostics& diagnostics) {
  const Stage& stage = planned.stage;
  const std::filesystem::path& folder = planned.folder;
  StageRow row{stage.name, type_of(stage.config, "student"), type_of(stage.config, "teacher"), "", 0, 0, {}};
  if (options_.restart && options_.writes_files) std::filesystem::remove_all(folder);
  wait_for_rank0();  // every rank sees the folder as rank 0 left it
  const auto summary_path = folder / "summary.json";
  if (std::filesystem::exists(summary_path)) {
    read_summary(summary_path, stage.name, row);
    spdlog::info("stage {}: finished in an earlier run ({}); skipping", stage.name, summary_path.string());
    return row;
  }
  const bool checkpoint = std::filesystem::exists(folder / "checkpoints" / "last.safetensors");
  if (checkpoint && !options_.resume)
    throw Error("stage '" + stage.name + "' has a checkpoint from an earlier, unfinished run in " + folder.string() +
                ": continue it with --resume, or start the stage over with --restart");

  AssemblyOptions assembly;
  assembly.sharding = options_.sharding;
  StageComponents components = assemble_stage(stage.config, factory_, assembly, diagnostics);
  diagnostics.throw_if_any();
  for (const auto& loss : components.losses) row.losses += (row.losses.empty() ? "" : " + ") + loss.name;
  bool uses_labels = false;
  for (const auto& loss : components.losses) uses_labels |= loss.loss->uses_labels();
  for (const auto& source : components.train->sources) {
    row.images += source->size();
    if (uses_labels)
      for (int64_t k = 0; k < source->size(); ++k) row.labels += source->label_of(k) >= 0;
  }

  // A refused resume must leave config.toml as the checkpoint's run wrote it: it is written
  // only for a fresh stage here, and after the stage finishes.
  const std::string config_text = toml::format(stage.config);
  if (options_.writes_files) {
    std::filesystem::create_directories(folder);
    if (!checkpoint) write_file_atomically((folder / "config.toml").string(), config_text);
  }
  spdlog::info("stage {} ({} of {}): {} <- {} [{}], {} epochs into {}", stage.name, position, count, row.student,
               row.teacher.empty() ? "labels" : row.teacher, row.losses, components.settings.epochs, folder.string());
  Trainer trainer(components, folder, device_, seed_, toml::format(without_result_neutral_keys(stage.config)));
  const StageResult result = trainer.run(options_.resume && checkpoint);
  if (options_.writes_files && checkpoint) write_file_atomically((folder / "config.toml").string(), config_text);
  row.result = to_json(result);
  const nlohmann::json summary = {{"stage", stage.name}, {"losses", row.losses}, {"train_images", row.images},
                                  {"labels_used", row.labels}, {"result", row.result}};
  if (options_.writes_files) {
    write_file_atomically(summary_path.string(), summary.dump(2) + "\n");
    write_stage_plots(folder);
  }
  wait_for_rank0();  // later stages read this stage's weights and summary
  spdlog::info("stage {}: best top-1 {:.2f}% in {:.0f} s", stage.name, result.best_top1, result.seconds);
  return row;
}

std::string results_table(const std::vector<StageRow>& rows) {
  std::ostringstream table;
  table << "| stage | student | teacher | losses | train images | labels used | top-1 | top-5 | EMA top-1 | "
           "teacher top-1 | time (s) |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& row : rows) {
    const auto& r = row.result;
    table << "| " << row.stage << " | " << row.student << " | " << (row.teacher.empty() ? "-" : row.teacher) << " | "
          << row.losses << " | " << row.images << " | " << row.labels << " | " << percent(r.value("best_top1", -1.0))
          << " | " << percent(r.value("best_top5", -1.0)) << " | " << percent(r.value("ema_top1", -1.0)) << " | "
          << percent(r.value("teacher_top1", -1.0)) << " | " << static_cast<int64_t>(r.value("seconds", 0.0)) << " |\n";
  }
  return table.str();
}

}  // namespace ssld::host
