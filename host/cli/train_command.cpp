// `ssld train CONFIG`: runs the config's stages in order, each into its own folder, skipping
// stages that finished in an earlier invocation, and prints (and writes) the results table.
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "cli/run_layout.hpp"
#include "components/component_factory.hpp"
#include "config/config_loader.hpp"
#include "core/atomic_file.hpp"
#include "core/bounded_input.hpp"
#include "dist/data_parallel.hpp"
#include "dist/dist_env.hpp"
#include "stage/assembly.hpp"


#include <nlohmann/json.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <iostream>
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

struct ResultRow {
  std::string stage, student, teacher, losses;
  int64_t images = 0, labels = 0;
  nlohmann::json result;
};

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

std::string results_table(const std::vector<ResultRow>& rows) {
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

std::string type_of(const TomlValue& config, const std::string& key) {
  if (!config.contains(key) || !config.at(key).contains("type")) return "";
  std::string type = config.at(key).at("type").as_string().str;
  if (key == "teacher" && config.at(key).contains("student") && config.at(key).at("student").contains("type"))
    type += " (" + config.at(key).at("student").at("type").as_string().str + ")";
  return type;
}

// Under torchrun (RANK, WORLD_SIZE, ... set, WORLD_SIZE > 1): this process becomes one rank of
// a data-parallel run on cuda:LOCAL_RANK (CUDA) or the CPU, connected within [dist] timeout_s.
// The Trainer finds it through current_data_parallel_run() until this object is destroyed.
class DataParallelScope {
 public:
  DataParallelScope(CommandSetup& setup, bool dry_run) {
    const auto env = join_multi_process_run(setup);
    if (!env) return;
    if (dry_run) throw Error("--dry-run runs in a single process: start it without torchrun's RANK/WORLD_SIZE");
    run_.settings = read_dist_settings(setup.root);
    if (env->rank > 0 && spdlog::get_level() < spdlog::level::warn) spdlog::set_level(spdlog::level::warn);
    run_.dist = DistContext::connect(*env, setup.device, run_.settings.timeout());
    spdlog::info("data-parallel: rank {} of {} ({}, {} on {}), global batch = data.train.batch_size x {}",
                 env->rank, env->world_size, setup.device.str(), run_.dist->backend(),
                 env->master_addr + ":" + std::to_string(env->master_port), env->world_size);
    set_current_data_parallel_run(&run_);
  }
  ~DataParallelScope() {
    if (run_.dist) set_current_data_parallel_run(nullptr);
  }
  DistContext* dist() const { return run_.dist.get(); }
  bool is_main() const { return !run_.dist || run_.dist->is_main(); }
  Sharding sharding() const {
    return run_.dist ? Sharding{run_.dist->rank(), run_.dist->world_size()} : Sharding{};
  }
  // Ranks > 0 wait here while rank 0 deletes or writes what they read next.
  void barrier() const {
    if (run_.dist) run_.dist->barrier();
  }

 private:
  DataParallelRun run_;
};

}  // namespace

int run_train(const TrainCommand& command) {
  install_stop_signals();
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  std::vector<Stage> stages = expand_stages(setup->root, diagnostics);
  diagnostics.throw_if_any();
  const DataParallelScope data_parallel(*setup, command.dry_run);
  const bool main_rank = data_parallel.is_main();  // the only one that writes
  DryRunSettings dry = command.dry;
  std::unique_ptr<ScratchFolder> scratch;  // a dry run writes only here
  if (command.dry_run) {
    scratch = std::make_unique<ScratchFolder>();
    dry.scratch = scratch->path();
    setup->run.output_dir = (scratch->path() / "runs").string();
    for (auto& stage : stages) make_dry_run(stage.config, stage.name, dry, *setup->factory, diagnostics);
    diagnostics.throw_if_any();
  }
  const auto folders = stage_folders(setup->run, stages);
  const auto run = run_folder(setup->run);
  if (main_rank) {
    std::filesystem::create_directories(run);
    spdlog::default_logger()->sinks().push_back(
        std::make_shared<spdlog::sinks::basic_file_sink_mt>((run / "log.txt").string()));
    spdlog::info("run folder {}", run.string());
  }

  std::vector<ResultRow> rows;
  for (size_t i = 0; i < stages.size(); ++i) {
    Stage& stage = stages[i];
    const auto& folder = folders[i];
    resolve_stage_references(stage, std::vector<Stage>(stages.begin(), stages.begin() + i), folders, diagnostics);
    ResultRow row{stage.name, type_of(stage.config, "student"), type_of(stage.config, "teacher"), "", 0, 0, {}};
    if (command.restart && main_rank) std::filesystem::remove_all(folder);
    data_parallel.barrier();  // every rank sees the folder as rank 0 left it
    const auto summary_path = folder / "summary.json";
    if (std::filesystem::exists(summary_path)) {
      try {
        const nlohmann::json summary = read_json_file(summary_path, "stage summary");
        row.losses = summary.value("losses", "");
        row.images = summary.value("train_images", int64_t{0});
        row.labels = summary.value("labels_used", int64_t{0});
        row.result = summary.at("result");
        if (!row.result.is_object()) throw Error("its 'result' is not an object");
      } catch (const std::exception& error) {  // a damaged file: nlohmann's type and key errors too
        throw Error("stage '" + stage.name + "' has a damaged " + summary_path.string() + " (" + error.what() +
                    "): delete it to train the stage again, or start over with --restart");
      }
      spdlog::info("stage {}: finished in an earlier run ({}); skipping", stage.name, summary_path.string());
      rows.push_back(row);
      continue;
    }
    const bool checkpoint = std::filesystem::exists(folder / "checkpoints" / "last.safetensors");
    if (checkpoint && !command.resume)
      throw Error("stage '" + stage.name + "' has a checkpoint from an earlier, unfinished run in " + folder.string() +
                  ": continue it with --resume, or start the stage over with --restart");

    AssemblyOptions assembly;
    assembly.sharding = data_parallel.sharding();
    StageComponents components = assemble_stage(stage.config, *setup->factory, assembly, diagnostics);
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
    if (main_rank) {
      std::filesystem::create_directories(folder);
      if (!checkpoint) write_file_atomically((folder / "config.toml").string(), config_text);
    }
    spdlog::info("stage {} ({} of {}): {} <- {} [{}], {} epochs into {}", stage.name, i + 1, stages.size(), row.student,
                 row.teacher.empty() ? "labels" : row.teacher, row.losses, components.settings.epochs, folder.string());
    Trainer trainer(components, folder, setup->device, static_cast<uint64_t>(setup->run.seed),
                    toml::format(without_result_neutral_keys(stage.config)));
    const StageResult result = trainer.run(command.resume && checkpoint);
    if (main_rank && checkpoint) write_file_atomically((folder / "config.toml").string(), config_text);
    row.result = to_json(result);
    const nlohmann::json summary = {{"stage", stage.name}, {"losses", row.losses}, {"train_images", row.images},
                                    {"labels_used", row.labels}, {"result", row.result}};
    if (main_rank) write_file_atomically(summary_path.string(), summary.dump(2) + "\n");
    data_parallel.barrier();  // later stages read this stage's weights and summary
    spdlog::info("stage {}: best top-1 {:.2f}% in {:.0f} s", stage.name, result.best_top1, result.seconds);
    rows.push_back(row);
  }
  if (!main_rank) return 0;
  const std::string table = results_table(rows);
  write_file_atomically((run / "results.md").string(), "# " + setup->run.name + "\n\n" + table);
  if (command.dry_run) {
    std::cout << "\n" << table << "\ndry run passed: " << stages.size() << " stage(s) built and trained for "
              << dry.steps << " steps each on generated images (nothing was kept)\n";
    return 0;
  }
  std::cout << "\n" << table << "\nresults: " << (run / "results.md").string() << "\n";
  return 0;
}

}  // namespace ssld::host
