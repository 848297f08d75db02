// The `ssld` subcommands. Each returns the process exit code; user mistakes surface as
// ConfigError / PluginError / ssld::Error and are printed by main as one paragraph.
#pragma once

#include "stage/dry_run.hpp"

#include <string>
#include <vector>

namespace ssld::host {

struct PluginsCommand {
  bool json = false;
  std::string config;  // optional: also load the config's [plugins] paths
};

struct CheckCommand {
  std::string config;
  std::vector<std::string> overrides;  // --set key.path=value
  bool dry_run = false;                // data and teacher files need not exist
};

struct BenchDataCommand {
  std::string config;
  std::vector<std::string> overrides;
  std::string pipeline = "train";
  int64_t steps = 20;
  int max_threads = 0;  // 0: one per core
};

struct TrainCommand {
  std::string config;
  std::vector<std::string> overrides;
  bool resume = false;   // continue an unfinished stage from its last checkpoint
  bool restart = false;  // start every stage over, deleting its earlier results
  bool dry_run = false;  // synthetic data, a stand-in teacher, a few steps, in a temporary folder
  DryRunSettings dry;
};

struct EvalCommand {
  std::string config;
  std::vector<std::string> overrides;
  std::string stage;        // default: the last stage
  std::string weights;      // student weights to evaluate (safetensors, .pth)
  bool teacher = false;     // evaluate the stage's teacher instead
  std::string predictions;  // CSV of per-sample top-5 predictions
};

struct ExportCommand {
  std::string config;
  std::vector<std::string> overrides;
  std::string stage;          // default: the last stage
  std::string which = "best";  // best | last | ema: which of the stage's weights
  std::string weights;        // instead: this weights file (safetensors or .pth)
  std::string output;         // .pth / .pt (torch.save format) or .safetensors
  std::string torchscript;    // a scripted twin of the architecture: write TorchScript instead
  bool loss_state = false;    // also the losses' parameters and buffers, from the last checkpoint
};

struct SweepCommand {
  std::string config;
  std::vector<std::string> overrides;
  int jobs = 1;              // runs at once, the CPU threads divided between them
  std::vector<int> devices;  // CUDA devices: runs placed round-robin (sets each run's [run] device)
  bool dry_run = false;      // list the runs and their status; run nothing
};

struct MineCommand {
  std::string config;
  std::vector<std::string> overrides;
  std::string stage;     // whose teacher and [mine] (default: the last stage)
  bool resume = false;   // continue an interrupted run from its state.json
  bool restart = false;  // delete earlier mining results and start over
};

struct CacheTeacherCommand {
  std::string config;
  std::vector<std::string> overrides;
  std::string stage;   // default: every stage with a [teacher] and a [teacher_cache]
  int64_t epochs = 0;  // 0: the stage's [train] epochs
};

struct FeaturesCommand {
  std::string config;
  std::vector<std::string> overrides;
  std::string stage;  // default: the last stage
};

struct ReportCommand {
  std::string sweep_folder;  // <output_dir>/<run name> of a sweep
};

int run_export(const ExportCommand& command);
int run_plugins(const PluginsCommand& command);
int run_eval(const EvalCommand& command);
int run_train(const TrainCommand& command);
int run_bench_data(const BenchDataCommand& command);
int run_check(const CheckCommand& command);
int run_sweep_command(const SweepCommand& command);
int run_report(const ReportCommand& command);
int run_cache_teacher(const CacheTeacherCommand& command);
int run_mine(const MineCommand& command);
int run_features(const FeaturesCommand& command);

}  // namespace ssld::host
