// `ssld cache-teacher CONFIG`: fills the [teacher_cache] store ahead of training, running the
// teacher over the training batches of every epoch exactly as `ssld train` would (same loader,
// same augmentations, same batch augmentations), without a student. Under torchrun's variables
// each rank fills the store of its own shard (the key holds rank and world size), which is what
// that rank reads when it trains with the same world size; no collective is needed.
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "stage/stage_plan.hpp"
#include "data/device_batch.hpp"
#include "stage/assembly.hpp"
#include "teacher_cache/teacher_cache.hpp"
#include "train/teacher_source.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <iostream>

namespace ssld::host {

namespace {

// Fills `epochs` epochs of one stage's store; returns how many it computed.
int64_t fill_stage(Stage stage, const CommandSetup& setup, int64_t epochs_override, Sharding sharding,
                   Diagnostics& diagnostics) {
  stage.config.as_table()["teacher_cache"].as_table()["mode"] = TomlValue("fill");  // `read` is for training
  AssemblyOptions options;
  options.require_training = false;
  options.sharding = sharding;
  StageComponents components = assemble_stage(stage.config, *setup.factory, options, diagnostics);
  diagnostics.throw_if_any();
  if (!components.teacher_cache)
    throw Error("stage '" + stage.name + "': its teacher is not built yet (its weights come from an earlier stage: "
                "train that stage first)");
  TeacherCache& cache = *components.teacher_cache;
  const TeacherSource teacher(*components.teacher, &cache, setup.device, components.settings.channels_last);
  DataPipeline& train = *components.train;
  const int64_t epochs = epochs_override > 0 ? epochs_override : components.settings.epochs;
  const uint64_t seed = static_cast<uint64_t>(setup.run.seed);
  int64_t filled = 0;
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    if (cache.store().has_epoch(epoch)) {
      spdlog::info("stage {}: epoch {} already stored", stage.name, epoch + 1);
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    Loader loader(*train.samples, *train.sampler, train.loader);
    loader.start(epoch, 0);
    while (auto host_batch = loader.next()) {
      const Batch batch = to_device(*host_batch, train, setup.device, seed);
      (void)teacher.outputs(batch.images, batch.ids, StepPosition{epoch, host_batch->step});
    }
    ++filled;
    spdlog::info("stage {}: epoch {} of {} stored in {:.1f} s", stage.name, epoch + 1, epochs,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  // A shard's accuracy is not the teacher's.
  if (components.val && sharding.world_size == 1) (void)teacher.accuracy(*components.val, seed);
  std::cout << (sharding.world_size > 1 ? "rank " + std::to_string(sharding.rank) + ", " : std::string()) << "stage "
            << stage.name << ": " << cache.store().folder().string() << " holds epochs 1-" << epochs
            << " (" << filled << " computed now, " << cache.codec().name() << ")\n";
  return filled;
}

}  // namespace

int run_cache_teacher(const CacheTeacherCommand& command) {
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  diagnostics.throw_if_any();
  const Sharding sharding = sharding_of(join_multi_process_run(*setup));
  std::vector<Stage> stages;
  if (!command.stage.empty()) {
    stages.push_back(select_stage(setup->root, setup->run, command.config, command.stage, diagnostics).stage);
  } else {  // every stage that caches its teacher
    for (auto& planned : plan_stages(expand_stages(setup->root, diagnostics), setup->run, diagnostics))
      if (planned.stage.config.contains("teacher_cache") && planned.stage.config.contains("teacher"))
        stages.push_back(std::move(planned.stage));
  }
  diagnostics.throw_if_any();
  if (stages.empty())
    throw ConfigError(SourcePlace{command.config, 0, 0},
                      "no stage has both a [teacher] and a [teacher_cache]: nothing to cache");
  for (const auto& stage : stages) {
    if (!stage.config.contains("teacher_cache"))
      throw ConfigError(SourcePlace{command.config, 0, 0}, "stage '" + stage.name + "' has no [teacher_cache]");
    fill_stage(stage, *setup, command.epochs, sharding, diagnostics);
  }
  return 0;
}

}  // namespace ssld::host
