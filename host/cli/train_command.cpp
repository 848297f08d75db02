// `ssld train CONFIG`: joins a torchrun run when started by one, then runs the config's stages in
// order (stage/stage_runner.hpp) and prints (and writes) the results table.
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "core/atomic_file.hpp"
#include "core/stop_signals.hpp"
#include "dist/data_parallel.hpp"
#include "dist/dist_env.hpp"
#include "stage/dry_run.hpp"
#include "stage/stage_plan.hpp"
#include "stage/stage_runner.hpp"
#include "train/run_plots.hpp"

#include <ATen/Parallel.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <iostream>

namespace ssld::host {

namespace {

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
  const std::vector<PlannedStage> planned = plan_stages(std::move(stages), setup->run, diagnostics);
  diagnostics.throw_if_any();
  const auto run = run_folder(setup->run);
  if (main_rank) {
    std::filesystem::create_directories(run);
    spdlog::default_logger()->sinks().push_back(
        std::make_shared<spdlog::sinks::basic_file_sink_mt>((run / "log.txt").string()));
    spdlog::info("run folder {}", run.string());
    spdlog::info("compute threads: {} ({})", at::get_num_threads(), setup->threads_reason);
  }

  StageRunOptions options;
  options.resume = command.resume;
  options.restart = command.restart;
  options.sharding = data_parallel.sharding();
  options.writes_files = main_rank;
  if (data_parallel.dist()) options.barrier = [&] { data_parallel.barrier(); };
  StageRunner runner(*setup->factory, setup->device, static_cast<uint64_t>(setup->run.seed), std::move(options));
  std::vector<StageRow> rows;
  for (size_t i = 0; i < planned.size(); ++i) rows.push_back(runner.run(planned[i], i + 1, planned.size(), diagnostics));
  if (!main_rank) return 0;
  const std::string table = results_table(rows);
  std::vector<std::filesystem::path> stage_folders;
  for (const auto& stage : planned) stage_folders.push_back(stage.folder);
  const bool run_plot = !write_run_plot(run, stage_folders).empty();
  std::string plots = "\n## Plots\n\n";
  if (run_plot) plots += "- the run: [accuracy of every stage](accuracy.svg)\n";
  for (const auto& stage : planned) {
    const std::string name = stage.folder.filename().string();
    plots += "- " + stage.stage.name + ": [loss](" + name + "/loss.svg), [learning rate](" + name +
             "/lr.svg), [accuracy](" + name + "/accuracy.svg)\n";
  }
  write_file_atomically((run / "results.md").string(), "# " + setup->run.name + "\n\n" + table + plots);
  if (command.dry_run) {
    std::cout << "\n" << table << "\ndry run passed: " << planned.size() << " stage(s) built and trained for "
              << dry.steps << " steps each on generated images (nothing was kept)\n";
    return 0;
  }
  std::cout << "\n" << table << "\nresults: " << (run / "results.md").string() << "\n";
  return 0;
}

}  // namespace ssld::host
