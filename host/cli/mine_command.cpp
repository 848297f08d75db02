// `ssld mine CONFIG`: the teacher of the config (or of --stage) predicts every candidate of
// [[mine.sources]]; the most confident per class, minus near-duplicates of the protected
// images, become a file list for the `file_list` dataset (see host/mine/). Under torchrun's
// variables each rank mines its shard into <output>/shards/rank<R>-of-<W>/ and rank 0 merges
// them into the list one process would have written.
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "stage/stage_plan.hpp"
#include "core/stop_signals.hpp"
#include "dist/data_parallel.hpp"
#include "mine/mine_config.hpp"
#include "mine/miner.hpp"

#include <ssld/rng.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace ssld::host {

namespace {

namespace fs = std::filesystem;

std::vector<std::string> class_names_of(const std::vector<const DataPipeline*>& pipelines) {
  for (const DataPipeline* pipeline : pipelines)
    if (pipeline)
      for (const auto& source : pipeline->sources)
        if (auto names = source->class_names(); !names.empty()) return names;
  return {};
}

std::string identity_of(const TomlValue& config, const Teacher& teacher, const DataPipeline& candidates) {
  std::string text = toml::format(config.at("mine")) + "|" + teacher.identity();
  for (const auto& source : candidates.sources) text += "|" + source->identity();
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(Rng::purpose_of(text)));
  return hex;
}

// Where a rank of a sharded run keeps its state and removed pairs until rank 0 merges them.
MineFiles shard_files(const MineFiles& results, Sharding shard) {
  return MineFiles{results.folder / "shards" /
                   ("rank" + std::to_string(shard.rank) + "-of-" + std::to_string(shard.world_size))};
}

void print_outcome(const MineOutcome& outcome, const MineFiles& files) {
  std::printf("mined %lld of %lld candidates (%lld near-duplicates of protected images removed) in %.1f s\n"
              "list: %s\nsummary: %s\n",
              static_cast<long long>(outcome.selected), static_cast<long long>(outcome.candidates),
              static_cast<long long>(outcome.duplicates), outcome.seconds, files.list().c_str(),
              files.summary_markdown().c_str());
}

bool finished(const MineFiles& files) {
  std::ifstream in(files.state());
  if (!in) return false;
  try {
    return nlohmann::json::parse(in).value("done", false);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int run_mine(const MineCommand& command) {
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  diagnostics.throw_if_any();
  const std::optional<DistEnv> env = join_multi_process_run(*setup);
  const Sharding shard = sharding_of(env);
  const bool sharded = env.has_value();
  const PlannedStage selected = select_stage(setup->root, setup->run, command.config, command.stage, diagnostics);
  const TomlValue& config = selected.stage.config;
  if (!config.contains("mine"))
    throw ConfigError(SourcePlace{command.config, 0, 0}, "the config has no [mine] table (see README: ssld mine)");
  if (!config.contains("teacher"))
    throw ConfigError(SourcePlace{command.config, 0, 0}, "the config has no [teacher] to mine with");
  const MineSettings settings = read_mine_settings(config, diagnostics);

  const ComponentFactory& factory = *setup->factory;
  auto component = factory.create(Kind::Teacher, config.at("teacher"), "teacher", Schema(), diagnostics);
  std::unique_ptr<Teacher> teacher(static_cast<Teacher*>(component.release()));
  const TomlValue data = config.contains("data") ? config.at("data") : TomlValue(TomlTable{});
  auto candidates = build_pipeline_from(data, candidate_pipeline_table(config), "mine", "mine", factory, shard,
                                        diagnostics);
  std::unique_ptr<DataPipeline> protected_images;
  if (settings.dedup.enabled()) {
    const TomlValue& mine = config.at("mine");
    const bool own = mine.contains("protected") && mine.at("protected").contains("sources");
    if (const auto table = protected_pipeline_table(config))
      protected_images = build_pipeline_from(data, *table, "protected", own ? "mine.protected" : "data.val", factory,
                                             Sharding{}, diagnostics);
  }
  if (teacher) {
    const TomlValue& mine = config.at("mine");
    for (const int64_t c : settings.selection.classes)
      if (c >= teacher->num_classes())
        diagnostics.add(SourcePlace::of(mine.at("classes")), "[mine] classes: " + std::to_string(c) +
                                                                 " is not a class of the teacher (it predicts " +
                                                                 std::to_string(teacher->num_classes()) + ")");
    const auto names = teacher->feature_names();
    if (settings.dedup.feature &&
        std::find(names.begin(), names.end(), settings.dedup.feature_name) == names.end()) {
      std::string known;
      for (const auto& name : names) known += (known.empty() ? "" : ", ") + name;
      diagnostics.add(SourcePlace::of(mine.at("dedup").at("feature")),
                      "[mine.dedup] feature: the teacher has no feature '" + settings.dedup.feature_name + "' (" +
                          (known.empty() ? "it names none: use method = \"phash\"" : "it has: " + known) + ")");
    }
  }
  diagnostics.throw_if_any();

  MineFiles files{settings.output.empty() ? run_folder(setup->run) / "mine" : fs::absolute(settings.output)};
  const MineFiles own = sharded ? shard_files(files, shard) : files;  // this process's state
  std::unique_ptr<DistContext> dist;
  if (sharded) dist = DistContext::connect(*env, setup->device, read_dist_settings(setup->root).timeout());
  if (command.restart) {
    if (shard.rank == 0) {  // the results; each rank removes its own shard folder
      for (const auto& file : {files.list(), files.summary_json(), files.summary_markdown(), files.removed_pairs(),
                               files.state()})
        fs::remove(file);
      fs::remove_all(files.images());
    }
    if (sharded) fs::remove_all(own.folder);
  } else if (finished(files)) {
    std::printf("already mined: %s (summary: %s); --restart mines again\n", files.list().c_str(),
                files.summary_markdown().c_str());
    return 0;
  }
  bool resume = command.resume;
  std::string refusal;  // why this process cannot start; every rank must be able to
  const bool has_state = fs::exists(own.state());
  if (has_state && !command.resume)
    refusal = "'" + own.state().string() +
              "' holds an unfinished mining run: continue it with --resume, or start over with --restart";
  if (command.resume && !has_state) {
    if (sharded) {  // killed before its first state: the other ranks' progress is kept
      spdlog::info("rank {}: no state at '{}': mining its shard from the start", shard.rank, own.state().string());
      resume = false;
    } else {
      refusal = "--resume: no mining state at '" + own.state().string() + "'";
    }
  }
  if (dist && !dist->all(refusal.empty()))
    throw Error(refusal.empty() ? "another rank cannot start mining (its message says why)" : refusal);
  if (!refusal.empty()) throw Error(refusal);

  const TeacherSource source(*teacher, nullptr, setup->device, false);
  install_stop_signals();  // SIGINT/SIGTERM: save the state after the current batch and exit 3
  MineJob job;
  job.settings = settings;
  job.candidates = candidates.get();
  job.protected_images = protected_images.get();
  job.teacher = &source;
  job.device = setup->device;
  job.seed = static_cast<uint64_t>(setup->run.seed);
  job.identity = identity_of(config, *teacher, *candidates);
  job.files = own;
  job.class_names = class_names_of({protected_images.get(), candidates.get()});
  job.resume = resume;
  job.shard = shard;
  if (!dist) {
    print_outcome(mine(job), files);
    return 0;
  }
  const MineOutcome mined = mine_shard(job);
  dist->barrier();  // every shard mined
  if (dist->is_main()) {
    std::vector<MineFiles> shards;
    for (int64_t rank = 0; rank < shard.world_size; ++rank) shards.push_back(shard_files(files, {rank, shard.world_size}));
    const MineOutcome merged = merge_mined_shards(job, shards, files);
    fs::remove_all(files.folder / "shards");
    print_outcome(merged, files);
  } else {
    std::printf("rank %lld: %lld candidates mined; rank 0 writes the list: %s\n", static_cast<long long>(shard.rank),
                static_cast<long long>(mined.candidates), files.list().c_str());
  }
  dist->barrier();  // every rank returns once the list is written
  return 0;
}

}  // namespace ssld::host
