// The `ssld` program: parses the command line, sets up logging, runs one subcommand, and
// turns every user-facing error into one clear paragraph and a non-zero exit code.
#include "cli/bash_completion.hpp"
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "core/atomic_file.hpp"
#include "core/cpu_budget.hpp"
#include "core/errors.hpp"
#include "log/logging.hpp"

#include <ssld/abi.h>
#include <ssld/fingerprint.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#ifndef SSLD_VERSION
#define SSLD_VERSION "0.0.0"
#endif

namespace {

// The one paragraph a failed command prints, and, for a launcher (`ssld sweep`), the same as
// JSON in the --failure-file it named: {"exit_status": N, "error": "..."}.
int report(const std::string& message, ssld::host::ExitStatus status, const std::string& failure_file) {
  std::cerr << "ssld: error: " << message << "\n";
  if (!failure_file.empty()) {
    try {
      ssld::host::write_file_atomically(failure_file,
                                        nlohmann::json{{"exit_status", status}, {"error", message}}.dump(2) + "\n");
    } catch (const std::exception& error) {
      std::cerr << "ssld: error: " << error.what() << "\n";
    }
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ssld::host;
  CLI::App app{"ssld: knowledge distillation of image classifiers (SSLD) with plugin components"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       std::string("ssld ") + SSLD_VERSION + " (plugin ABI " + std::to_string(SSLD_ABI_MAJOR) + "." +
                           std::to_string(SSLD_ABI_MINOR) + "; " + ssld::describe(ssld::this_build_fingerprint()) +
                           ")\ndefault threads: " + std::to_string(cpu_budget().threads) + " (" + cpu_budget().reason +
                           ")");
  LogOptions log_options;
  app.add_option("--log-level", log_options.level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_flag("-q,--quiet", log_options.quiet, "only warnings and errors");
  app.add_flag("-v,--verbose", log_options.verbose, "debug messages too");
  std::string failure_file;
  app.add_option("--failure-file", failure_file,
                 "when the command fails, also write its exit status and message as JSON to this file (for launchers)");

  PluginsCommand plugins;
  auto* plugins_app = app.add_subcommand("plugins", "list every component of every loaded plugin, with its options");
  plugins_app->add_flag("--json", plugins.json, "machine-readable output");
  plugins_app->add_option("--config", plugins.config, "also load the plugins named in this config's [plugins] paths");

  CheckCommand check;
  auto* check_app = app.add_subcommand("check", "validate a config and build every component in it, without training");
  check_app->add_option("config", check.config, "the config file (TOML)")->required();
  check_app->add_option("--set", check.overrides, "override a config key: --set student.width=64")
      ->type_name("KEY=VALUE");
  check_app->add_flag("--dry-run", check.dry_run,
                      "check data and teacher tables against their schemas only: their files need not exist");

  TrainCommand train;
  auto* train_app = app.add_subcommand("train", "run the config's stages: distill, train, fine-tune");
  train_app->add_option("config", train.config, "the config file (TOML)")->required();
  train_app->add_option("--set", train.overrides, "override a config key")->type_name("KEY=VALUE");
  auto* resume_flag = train_app->add_flag("--resume", train.resume, "continue an unfinished stage from its last checkpoint");
  auto* restart_flag =
      train_app->add_flag("--restart", train.restart, "start every stage over, deleting earlier results")->excludes(resume_flag);
  train_app->add_flag("--dry-run", train.dry_run,
                      "run every stage for a few steps on generated images with a random stand-in teacher, in a "
                      "temporary folder: checks a config without its data or teacher files")
      ->excludes(resume_flag)->excludes(restart_flag);
  train_app->add_option("--dry-run-steps", train.dry.steps, "training steps per stage in a dry run")
      ->capture_default_str()->check(CLI::PositiveNumber);
  train_app->add_option("--dry-run-batch", train.dry.batch_size, "batch size in a dry run")
      ->capture_default_str()->check(CLI::PositiveNumber);
  train_app->add_option("--dry-run-size", train.dry.image_size, "generated image size in a dry run")
      ->capture_default_str()->check(CLI::PositiveNumber);

  // --nproc-per-node on the commands that run under torchrun (dist/local_launch.hpp).
  int train_ranks = 0, mine_ranks = 0, cache_teacher_ranks = 0;
  auto add_nproc = [](CLI::App* command, int& ranks) {
    command->add_option("--nproc-per-node", ranks,
                        "start N local ranks with torchrun's variables (instead of torchrun); ranks 1.. log to "
                        "<run folder>/ranks/")
        ->check(CLI::Range(1, 1024));
  };
  add_nproc(train_app, train_ranks);

  EvalCommand eval;
  auto* eval_app = app.add_subcommand("eval", "top-1/top-5 of a student or teacher on data.val");
  eval_app->add_option("config", eval.config, "the config file (TOML)")->required();
  eval_app->add_option("--set", eval.overrides, "override a config key")->type_name("KEY=VALUE");
  eval_app->add_option("--stage", eval.stage, "which stage's models (default: the last)");
  eval_app->add_option("--weights", eval.weights, "student weights (.safetensors, .pth) to evaluate");
  eval_app->add_flag("--teacher", eval.teacher, "evaluate the stage's teacher instead of its student");
  eval_app->add_option("--predictions", eval.predictions, "write per-sample top-5 predictions to this CSV");

  ExportCommand export_weights;
  auto* export_app = app.add_subcommand("export", "write a stage's student weights as .pth (PyTorch) or .safetensors");
  export_app->add_option("config", export_weights.config, "the config file (TOML)")->required();
  export_app->add_option("--set", export_weights.overrides, "override a config key")->type_name("KEY=VALUE");
  export_app->add_option("--stage", export_weights.stage, "which stage's student (default: the last)");
  export_app->add_option("--which", export_weights.which, "the stage's best, last or EMA weights")->capture_default_str()
      ->check(CLI::IsMember({"best", "last", "ema"}));
  export_app->add_option("--weights", export_weights.weights, "export this weights file instead (.safetensors, .pth)");
  export_app->add_option("-o,--output", export_weights.output, "the file to write: .pth/.pt or .safetensors")->required();
  export_app->add_flag("--loss-state", export_weights.loss_state,
                       "also write the losses' trainable parts and state (FitNet connectors, CRD memories, ...) from "
                       "the stage's last checkpoint, as loss/<loss>/<tensor>");
  export_app->add_option("--torchscript", export_weights.torchscript,
                         "write TorchScript: this scripted model (same state-dict names) receives the weights");

  SweepCommand sweep;
  auto* sweep_app = app.add_subcommand(
      "sweep", "run the config's [sweep]: one `ssld train` per combination of axis values and seed, then the results tables");
  sweep_app->add_option("config", sweep.config, "the config file (TOML) with a [sweep] table")->required();
  sweep_app->add_option("--set", sweep.overrides, "override a config key of every run")->type_name("KEY=VALUE");
  sweep_app->add_option("--jobs", sweep.jobs, "runs at once; the CPU threads are divided between them")
      ->capture_default_str()->check(CLI::PositiveNumber);
  sweep_app->add_option("--devices", sweep.devices, "CUDA devices to place runs on, round-robin: --devices 0,1")
      ->delimiter(',')->check(CLI::NonNegativeNumber);
  sweep_app->add_flag("--dry-run", sweep.dry_run, "list the runs and their status from an earlier sweep; run nothing");

  MineCommand mine;
  auto* mine_app = app.add_subcommand(
      "mine", "the teacher picks unlabeled images for training: top-k per class, near-duplicates of data.val removed");
  mine_app->add_option("config", mine.config, "the config file (TOML) with a [mine] table")->required();
  mine_app->add_option("--set", mine.overrides, "override a config key")->type_name("KEY=VALUE");
  mine_app->add_option("--stage", mine.stage, "whose teacher and [mine] (default: the last stage)");
  auto* mine_resume = mine_app->add_flag("--resume", mine.resume, "continue an interrupted run from its state.json");
  mine_app->add_flag("--restart", mine.restart, "delete earlier mining results and start over")->excludes(mine_resume);

  add_nproc(mine_app, mine_ranks);

  CacheTeacherCommand cache_teacher;
  auto* cache_teacher_app = app.add_subcommand(
      "cache-teacher", "fill the [teacher_cache] store ahead of training: the teacher's soft labels for every epoch");
  cache_teacher_app->add_option("config", cache_teacher.config, "the config file (TOML) with a [teacher_cache]")->required();
  cache_teacher_app->add_option("--set", cache_teacher.overrides, "override a config key")->type_name("KEY=VALUE");
  cache_teacher_app->add_option("--stage", cache_teacher.stage,
                                "only this stage (default: every stage with a [teacher] and a [teacher_cache])");
  cache_teacher_app->add_option("--epochs", cache_teacher.epochs, "epochs to store (default: the stage's [train] epochs)")
      ->check(CLI::PositiveNumber);
  add_nproc(cache_teacher_app, cache_teacher_ranks);

  FeaturesCommand features;
  auto* features_app = app.add_subcommand(
      "features", "list the feature names of a stage's student and teacher with their shapes (for feature losses)");
  features_app->add_option("config", features.config, "the config file (TOML)")->required();
  features_app->add_option("--set", features.overrides, "override a config key")->type_name("KEY=VALUE");
  features_app->add_option("--stage", features.stage, "which stage (default: the last)");

  ReportCommand report_command;
  auto* report_app = app.add_subcommand(
      "report", "rebuild a sweep's results.csv, results.md and plots, or a training run's plots, from its folder");
  report_app->add_option("folder", report_command.sweep_folder,
                         "a sweep's or a training run's folder: <output_dir>/<run name>")
      ->required();

  BenchDataCommand bench_data;
  auto* bench_data_app =
      app.add_subcommand("bench-data", "images/s of a data pipeline, decode-only and full, for 1..N threads");
  bench_data_app->add_option("config", bench_data.config, "the config file (TOML)")->required();
  bench_data_app->add_option("--set", bench_data.overrides, "override a config key")->type_name("KEY=VALUE");
  bench_data_app->add_option("--pipeline", bench_data.pipeline, "which pipeline: train or val")->capture_default_str()
      ->check(CLI::IsMember({"train", "val"}));
  bench_data_app->add_option("--steps", bench_data.steps, "batches per measurement")->capture_default_str()->check(CLI::PositiveNumber);
  bench_data_app->add_option("--max-threads", bench_data.max_threads, "measure 1..N threads (0: the CPU budget, as --version says)")->capture_default_str();

  std::string completion_shell;
  auto* completion_app = app.add_subcommand("completion", "print a shell completion script (bash)");
  completion_app->add_option("shell", completion_shell, "the shell: bash")->required()->check(CLI::IsMember({"bash"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  try {
    ignore_file_size_signal();  // a write past `ulimit -f` becomes an error naming the file
    configure_logging(log_options);
    if (train_app->parsed() && train_ranks > 1)
      return run_as_local_ranks(train.config, train.overrides, train_ranks, argc, argv);
    if (mine_app->parsed() && mine_ranks > 1) return run_as_local_ranks(mine.config, mine.overrides, mine_ranks, argc, argv);
    if (cache_teacher_app->parsed() && cache_teacher_ranks > 1)
      return run_as_local_ranks(cache_teacher.config, cache_teacher.overrides, cache_teacher_ranks, argc, argv);
    if (completion_app->parsed()) {
      std::cout << bash_completion(app);
      return 0;
    }
    if (plugins_app->parsed()) return run_plugins(plugins);
    if (check_app->parsed()) return run_check(check);
    if (bench_data_app->parsed()) return run_bench_data(bench_data);
    if (train_app->parsed()) return run_train(train);
    if (eval_app->parsed()) return run_eval(eval);
    if (export_app->parsed()) return run_export(export_weights);
    if (sweep_app->parsed()) return run_sweep_command(sweep);
    if (report_app->parsed()) return run_report(report_command);
    if (cache_teacher_app->parsed()) return run_cache_teacher(cache_teacher);
    if (mine_app->parsed()) return run_mine(mine);
    if (features_app->parsed()) return run_features(features);
  } catch (const std::exception& error) {
    const ExitStatus status = exit_status_of(error);
    return report(status == kExitInternalError ? std::string("unexpected failure: ") + error.what() : error.what(),
                  status, failure_file);
  }
  return kExitInternalError;
}
