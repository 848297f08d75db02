// `ssld train` as a data-parallel run: ranks are separate processes started with the torchrun
// variables (LaunchedRanks), Gloo on loopback. 2 ranks with batch B give the weights of 1 rank
// with batch 2B (SSLD loss, BatchNorm-free student); only rank 0 writes; both ranks stop on a
// signal and resume; a killed rank fails the other within [dist] timeout_s.
#include "dist_launch.hpp"
#include "fmnist_subset.hpp"
#include "plugin_host.hpp"
#include "weights/safetensors.hpp"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <csignal>
#include <sstream>
#include <thread>

using ssld::test::LaunchedRanks;
using ssld::test::RunResult;
using ssld::test::TempDir;

namespace {

const std::string kSsld = SSLD_BINARY;
const std::string kPluginPath = std::string(SSLD_TEST_PLUGIN_ROOT) + "/tiny_mlp";

std::string mlp(const std::string& table) {
  return "[" + table + "]\ntype = \"tiny_mlp\"\nhidden = 32\nimage_size = 28\nin_channels = 1\n";
}

// 512 training images (8 steps of 64 per epoch), 200 validation images, a BatchNorm-free MLP.
std::string config(const std::string& name, const std::string& body, int64_t epochs) {
  return ssld::test::one_thread_run_tables(name) + ssld::test::fmnist_data_tables({512, 64, true, false, 200, 50}) +
         mlp("student") + body +
         "[train]\nepochs = " + std::to_string(epochs) + "\nlr = 0.1\nwarmup_epochs = 0.5\nlog_every = 1\nweight_decay = 1e-4\n"
         "[dist]\ntimeout_s = 20\n";
}

// The teacher: the same MLP trained on the labels for one epoch, in one process.
std::filesystem::path train_teacher(const TempDir& dir) {
  const auto file = dir.write("teacher.toml", config("teacher", "[[loss]]\ntype = \"ce\"\n", 1));
  const RunResult result = ssld::test::run_program(kSsld, {"-q", "train", file.string()},
                                                   {{"SSLD_PLUGIN_PATH", kPluginPath}, {"RANK", ""}, {"WORLD_SIZE", ""}});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return dir / "runs" / "teacher" / "main" / "student.safetensors";
}

std::string ssld_body(const std::filesystem::path& teacher) {
  return "[teacher]\ntype = \"checkpoint\"\nweights = \"" + teacher.string() + "\"\n" + mlp("teacher.student") +
         "[[loss]]\ntype = \"ssld\"\n";
}

std::map<std::string, at::Tensor> weights(const std::filesystem::path& file) {
  std::map<std::string, at::Tensor> tensors;
  for (auto& [name, tensor] : ssld::host::read_safetensors(file.string()).tensors) tensors[name] = tensor;
  return tensors;
}

double max_difference(const std::filesystem::path& a, const std::filesystem::path& b) {
  const auto x = weights(a), y = weights(b);
  EXPECT_EQ(x.size(), y.size());
  double worst = 0;
  for (const auto& [name, tensor] : x) worst = std::max(worst, (tensor - y.at(name)).abs().max().item<double>());
  return worst;
}

std::map<std::string, std::string> plugin_env() { return {{"SSLD_PLUGIN_PATH", kPluginPath}}; }

int64_t lines_in(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file)) return 0;
  const std::string text = ssld::test::read_file(file);
  return std::count(text.begin(), text.end(), '\n');
}

// Waits (at most `limit`) until rank 0 has logged at least `rows` training steps.
bool wait_for_steps(const std::filesystem::path& metrics, int64_t rows, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (lines_in(metrics) >= rows) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// A labels-only stage (no teacher to train first) for the resume and failure tests.
std::string ce_config(const std::string& name, int64_t epochs) {
  return config(name, "[[loss]]\ntype = \"ce\"\n", epochs);
}

std::vector<RunResult> launch(const TempDir& dir, const std::string& config_file, int world,
                              const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"train", (dir / config_file).string(), "--set", "data.train.batch_size=" + std::to_string(64 / world)};
  args.insert(args.end(), extra.begin(), extra.end());
  return LaunchedRanks(kSsld, args, world, dir / ("logs_" + config_file), plugin_env()).wait(std::chrono::seconds(120));
}

// Starts 2 ranks of `ssld train CONFIG --set data.train.batch_size=B` and sends both SIGTERM
// once rank 0 has logged 2 steps; returns how they ended.
std::vector<RunResult> signal_both_ranks(const TempDir& dir, const std::string& config_file, int64_t batch_size) {
  const std::string name = config_file.substr(0, config_file.find('.'));
  LaunchedRanks ranks(kSsld,
                      {"train", (dir / config_file).string(), "--set", "data.train.batch_size=" + std::to_string(batch_size)},
                      2, dir / ("logs_" + name + "_signal"), plugin_env());
  EXPECT_TRUE(wait_for_steps(dir / "runs" / name / "main" / "metrics_steps.jsonl", 2, std::chrono::seconds(60)));
  ranks.signal(0, SIGTERM);
  ranks.signal(1, SIGTERM);
  return ranks.wait(std::chrono::seconds(60));
}

}  // namespace

TEST(DistSampling, TheRandomSamplersShardsOfBatchBUnionToTheOneRankBatchOf2B) {
  ssld::test::PluginHost host;
  auto one = host.pipeline(ssld::test::fmnist_data_tables({512, 64, true, false, 0, 0}), "train", {0, 1});
  const std::string half = ssld::test::fmnist_data_tables({512, 32, true, false, 0, 0});
  auto rank0 = host.pipeline(half, "train", {0, 2});
  auto rank1 = host.pipeline(half, "train", {1, 2});
  ASSERT_EQ(one->sampler->steps_per_epoch(), rank0->sampler->steps_per_epoch());
  for (int64_t epoch = 0; epoch < 2; ++epoch)
    for (int64_t step = 0; step < one->sampler->steps_per_epoch(); ++step) {
      auto whole = one->sampler->batch(epoch, step);
      auto halves = rank0->sampler->batch(epoch, step);
      const auto second = rank1->sampler->batch(epoch, step);
      halves.insert(halves.end(), second.begin(), second.end());
      ASSERT_EQ(whole.size(), halves.size());
      for (size_t i = 0; i < whole.size(); ++i) {  // the same samples in the same order: rank 0's, then rank 1's
        EXPECT_EQ(whole[i].index, halves[i].index);
        EXPECT_EQ(whole[i].pass, halves[i].pass);
      }
    }
}

TEST(DistTrain, TwoAndFourRanksMatchOneRankWithTheWholeBatchUnderTheSsldLoss) {
  TempDir dir;
  const auto teacher = train_teacher(dir);
  dir.write("one.toml", config("one", ssld_body(teacher), 2));
  dir.write("two.toml", config("two", ssld_body(teacher), 2));
  const auto one = launch(dir, "one.toml", 1);
  ASSERT_EQ(one[0].exit_code, 0) << one[0].err;
  const auto two = launch(dir, "two.toml", 2);
  ASSERT_EQ(two[0].exit_code, 0) << two[0].err;
  ASSERT_EQ(two[1].exit_code, 0) << two[1].err;
  // 16 SGD steps of the same 64 samples in the same order; the only difference is the order of
  // float32 sums (a mean over 64 against the average of two means over 32, summed by Gloo):
  // about one float32 ulp (~6e-8 relative) per sum, compounding over 16 steps. Measured:
  // 3.9e-7 absolute. 1e-5 leaves 25x headroom for other CPUs' kernels, and stays well below a
  // real difference (a skipped step or another sample moves weights by the order of
  // lr x gradient, lr = 0.1). No BatchNorm: per-rank batch statistics would make the two runs
  // genuinely different.
  const double difference = max_difference(dir / "runs" / "one" / "main" / "student.safetensors",
                                           dir / "runs" / "two" / "main" / "student.safetensors");
  std::cout << "max |w(1 rank, 64) - w(2 ranks, 32)| = " << difference << "\n";
  EXPECT_LT(difference, 1e-5);
  // Only rank 0 writes: the results table on its stdout, nothing from rank 1; one metrics row per step.
  EXPECT_NE(two[0].out.find("results:"), std::string::npos);
  EXPECT_EQ(two[1].out, "");
  EXPECT_EQ(two[1].err.find("stage main"), std::string::npos) << two[1].err;
  const std::string steps = ssld::test::read_file(dir / "runs" / "two" / "main" / "metrics_steps.jsonl");
  EXPECT_EQ(std::count(steps.begin(), steps.end(), '\n'), 16);
  // Evaluation is sharded and summed: both runs count all 200 validation images.
  std::ifstream summary(dir / "runs" / "two" / "main" / "summary.json");
  const std::string text((std::istreambuf_iterator<char>(summary)), {});
  EXPECT_NE(two[0].err.find("on 200 validation images"), std::string::npos) << two[0].err;

  // 4 ranks x 16: the same 64 samples per step, one more level of summation order.
  dir.write("four.toml", config("four", ssld_body(teacher), 2));
  const auto four = launch(dir, "four.toml", 4);
  for (int rank = 0; rank < 4; ++rank) ASSERT_EQ(four[rank].exit_code, 0) << "rank " << rank << ": " << four[rank].err;
  const double four_difference = max_difference(dir / "runs" / "one" / "main" / "student.safetensors",
                                                dir / "runs" / "four" / "main" / "student.safetensors");
  std::cout << "max |w(1 rank, 64) - w(4 ranks, 16)| = " << four_difference << "\n";
  EXPECT_LT(four_difference, 1e-5);
}

// SIGTERM to both ranks mid-run: they agree to stop after the same step, rank 0 writes the
// checkpoint, both exit with 3; `--resume` on both continues to the weights of the run that was
// never interrupted (the same collectives in the same order: bit-identical). A mid-epoch
// checkpoint of 2 ranks is refused by 1 process.
TEST(DistTrain, BothRanksStopOnASignalAndResumeToTheUninterruptedWeights) {
  TempDir dir;
  dir.write("whole.toml", ce_config("whole", 4));
  dir.write("cut.toml", ce_config("cut", 4));
  const auto whole = launch(dir, "whole.toml", 2);
  ASSERT_EQ(whole[0].exit_code, 0) << whole[0].err;
  ASSERT_EQ(whole[1].exit_code, 0) << whole[1].err;

  const auto metrics = dir / "runs" / "cut" / "main" / "metrics_steps.jsonl";
  const auto cut = signal_both_ranks(dir, "cut.toml", 32);
  ASSERT_EQ(cut[0].exit_code, 3) << cut[0].err;  // kInterruptedExitCode
  ASSERT_EQ(cut[1].exit_code, 3) << cut[1].err;
  const int64_t steps_before = lines_in(metrics);
  ASSERT_LT(steps_before, 32) << "the run ended before the signal arrived; nothing was tested";
  std::cout << "interrupted after " << steps_before << " of 32 steps\n";
  const bool mid_epoch = steps_before % 8 != 0;

  if (mid_epoch) {  // a mid-epoch position counts 2-rank steps: one process must not resume it
    const RunResult single = ssld::test::run_program(
        kSsld, {"train", (dir / "cut.toml").string(), "--set", "data.train.batch_size=32", "--resume"},
        {{"SSLD_PLUGIN_PATH", kPluginPath}, {"RANK", ""}, {"WORLD_SIZE", ""}});
    EXPECT_NE(single.exit_code, 0);
    EXPECT_NE(single.err.find("written mid-epoch"), std::string::npos) << single.err;
    EXPECT_NE(single.err.find("WORLD_SIZE=2"), std::string::npos) << single.err;
  }

  const auto resumed = launch(dir, "cut.toml", 2, {"--resume"});
  ASSERT_EQ(resumed[0].exit_code, 0) << resumed[0].err;
  ASSERT_EQ(resumed[1].exit_code, 0) << resumed[1].err;
  EXPECT_NE(resumed[0].err.find("resuming from"), std::string::npos) << resumed[0].err;
  EXPECT_EQ(lines_in(metrics), 32);  // each step logged once, by rank 0
  EXPECT_EQ(max_difference(dir / "runs" / "whole" / "main" / "student.safetensors",
                           dir / "runs" / "cut" / "main" / "student.safetensors"),
            0.0);
}

// With one step per epoch every step is an epoch's last: a signal lets that epoch end, so the
// checkpoint is an end-of-epoch one, which one process resumes although two wrote it.
TEST(DistTrain, ASignalDuringAnEpochsLastStepStopsAtTheEpochEndAndResumesWithAnotherWorldSize) {
  TempDir dir;
  dir.write("short.toml", ce_config("short", 60));
  const auto metrics = dir / "runs" / "short" / "main" / "metrics_steps.jsonl";
  const auto cut = signal_both_ranks(dir, "short.toml", 256);
  ASSERT_EQ(cut[0].exit_code, 3) << cut[0].err;
  ASSERT_EQ(cut[1].exit_code, 3) << cut[1].err;
  EXPECT_NE(cut[0].err.find("at the end of epoch"), std::string::npos) << cut[0].err;
  ASSERT_LT(lines_in(metrics), 60) << "the run ended before the signal arrived; nothing was tested";
  const RunResult single = ssld::test::run_program(
      kSsld, {"train", (dir / "short.toml").string(), "--set", "data.train.batch_size=256", "--resume"},
      {{"SSLD_PLUGIN_PATH", kPluginPath}, {"RANK", ""}, {"WORLD_SIZE", ""}});
  EXPECT_EQ(single.exit_code, 0) << single.err;
  EXPECT_NE(single.err.find("resuming from"), std::string::npos) << single.err;
}

// A rank that dies mid-run (SIGKILL: no goodbye) makes the other fail, with a message that says
// what happened, within [dist] timeout_s (20 s here) instead of hanging.
TEST(DistTrain, AKilledRankMakesTheOtherFailWithinTheTimeout) {
  TempDir dir;
  dir.write("long.toml", ce_config("long", 200));
  LaunchedRanks ranks(kSsld, {"train", (dir / "long.toml").string(), "--set", "data.train.batch_size=32"}, 2,
                      dir / "logs_long", plugin_env());
  ASSERT_TRUE(wait_for_steps(dir / "runs" / "long" / "main" / "metrics_steps.jsonl", 2, std::chrono::seconds(60)));
  const auto killed_at = std::chrono::steady_clock::now();
  ranks.signal(1, SIGKILL);
  const auto results = ranks.wait(std::chrono::seconds(40));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::cout << "rank 0 exited " << seconds << " s after rank 1 was killed\n";
  EXPECT_EQ(results[1].exit_code, 128 + SIGKILL);
  EXPECT_NE(results[0].exit_code, 0);
  EXPECT_NE(results[0].exit_code, -1) << "rank 0 hung: it was killed by the test after 40 s";
  EXPECT_LT(seconds, 20.0 + 5.0);
  EXPECT_NE(results[0].err.find("[dist] rank 0 of 2"), std::string::npos) << results[0].err;
  EXPECT_NE(results[0].err.find("Another rank probably died"), std::string::npos) << results[0].err;
}

// `ssld train CONFIG --nproc-per-node 2` starts the ranks itself: the weights equal those of two
// ranks started with torchrun's variables from outside, rank 0 talks on the terminal and rank 1
// logs to <run folder>/ranks/rank1.log; a SIGTERM to the launcher stops both ranks after a step
// (exit 3) and `--resume --nproc-per-node 2` finishes the run to the same weights.
TEST(DistTrain, NprocPerNodeLaunchesTheRanksItselfAndForwardsSignals) {
  TempDir dir;
  dir.write("outside.toml", ce_config("outside", 4));
  dir.write("inside.toml", ce_config("inside", 4));
  const auto outside = launch(dir, "outside.toml", 2);
  ASSERT_EQ(outside[0].exit_code, 0) << outside[0].err;
  ASSERT_EQ(outside[1].exit_code, 0) << outside[1].err;

  const std::vector<std::string> args = {"train", (dir / "inside.toml").string(), "--set", "data.train.batch_size=32",
                                         "--nproc-per-node", "2"};
  const std::map<std::string, std::string> env = {
      {"SSLD_PLUGIN_PATH", kPluginPath}, {"RANK", ""}, {"WORLD_SIZE", ""}, {"OMP_NUM_THREADS", ""}};
  // Interrupted once: SIGTERM to the launcher only.
  setenv("SSLD_PLUGIN_PATH", kPluginPath.c_str(), 1);
  const int interrupted = ssld::test::interrupt_once_written(kSsld, args, dir / "runs" / "inside" / "main" / "metrics_steps.jsonl");
  unsetenv("SSLD_PLUGIN_PATH");
  EXPECT_EQ(interrupted, 3) << "both ranks stopped after a step and saved";
  const std::string rank1 = ssld::test::read_file(dir / "runs" / "inside" / "ranks" / "rank1.log");
  EXPECT_NE(rank1.find("stopped by a signal"), std::string::npos) << rank1;

  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  const RunResult resumed = ssld::test::run_program(kSsld, resume, env);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("results:"), std::string::npos) << "rank 0's results table on the terminal";
  EXPECT_NE(resumed.err.find("2 ranks on 127.0.0.1:"), std::string::npos) << resumed.err;
  EXPECT_EQ(lines_in(dir / "runs" / "inside" / "main" / "metrics_steps.jsonl"), 32);
  EXPECT_EQ(max_difference(dir / "runs" / "outside" / "main" / "student.safetensors",
                           dir / "runs" / "inside" / "main" / "student.safetensors"),
            0.0);

  // Inside a rank that torchrun started, the flag is refused rather than nesting launchers.
  const RunResult nested = ssld::test::run_program(
      kSsld, args, {{"SSLD_PLUGIN_PATH", kPluginPath}, {"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_EQ(nested.exit_code, 2);
  EXPECT_NE(nested.err.find("use one launcher"), std::string::npos) << nested.err;
}

// A rank that dies (kill -9 on rank 1) makes the launcher stop the others at once and exit with
// that rank's status, instead of rank 0 waiting out the collective timeout.
TEST(DistTrain, NprocPerNodeStopsTheOtherRanksWhenOneDies) {
  TempDir dir;
  dir.write("dies.toml", ce_config("dies", 50));
  const std::string config = (dir / "dies.toml").string();
  const pid_t launcher = fork();
  if (launcher == 0) {
    setenv("SSLD_PLUGIN_PATH", kPluginPath.c_str(), 1);
    execl(kSsld.c_str(), kSsld.c_str(), "-q", "train", config.c_str(), "--nproc-per-node", "2", static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_TRUE(wait_for_steps(dir / "runs" / "dies" / "main" / "metrics_steps.jsonl", 2, std::chrono::seconds(60)));
  // The launcher's children, in start order: rank 0, rank 1.
  const std::string children = ssld::test::read_file("/proc/" + std::to_string(launcher) + "/task/" +
                                                     std::to_string(launcher) + "/children");
  std::istringstream pids(children);
  pid_t rank0 = 0, rank1 = 0;
  pids >> rank0 >> rank1;
  ASSERT_GT(rank1, 0) << "children: " << children;
  const auto start = std::chrono::steady_clock::now();
  kill(rank1, SIGKILL);
  int status = 0;
  waitpid(launcher, &status, 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGKILL) << "the dead rank's status";
  EXPECT_LT(seconds, 15.0) << "[dist] timeout_s is 20: the launcher did not wait for it";
  EXPECT_NE(kill(rank0, 0), 0) << "rank 0 is gone too";
}
