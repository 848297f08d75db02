// `ssld sweep` and `ssld report` end to end on a small Fashion-MNIST subset: every run of a
// grid finishes and is tabled, a second invocation skips them all, a failing run is recorded
// without stopping the others, an interrupted sweep resumes, and the report is rebuilt from disk.
#include "fmnist_subset.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <future>
#include <map>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

using ssld::test::RunResult;
using ssld::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kSsld = SSLD_BINARY;

// 1000 labeled training images, 500 test images, a tiny CNN, one thread: a run takes seconds.
std::string tiny_config(const std::string& sweep, int epochs = 1) {
  return ssld::test::one_thread_run_tables("sw") + ssld::test::fmnist_data_tables({1000, 50, true, false, 500, 250}) +
         R"([student]
type = "small_cnn"
width = 4
depth = 1
[[loss]]
type = "ce"
[train]
epochs = )" + std::to_string(epochs) + R"(
lr = 0.05
warmup_epochs = 0.0
log_every = 2
)" + sweep;
}

RunResult sweep(const TempDir& dir, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"-q", "sweep", (dir / "c.toml").string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return ssld::test::run_program(kSsld, args);
}

fs::path sweep_folder(const TempDir& dir) { return dir / "runs" / "sw"; }

nlohmann::json manifest(const TempDir& dir) {
  std::ifstream in(sweep_folder(dir) / "manifest.json");
  return nlohmann::json::parse(in);
}

int lines_of(const fs::path& file) {
  std::ifstream in(file);
  int lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  return lines;
}

std::map<std::string, std::string> statuses(const nlohmann::json& manifest) {
  std::map<std::string, std::string> out;
  for (const auto& run : manifest.at("runs")) out[run.at("id")] = run.at("status");
  return out;
}

}  // namespace

TEST(Sweep, RunsEveryCombinationSkipsThemWhenRepeatedAndReportRebuildsTheTables) {
  TempDir dir;
  dir.write("c.toml", tiny_config("[sweep]\nseeds = [0, 1]\n[sweep.axes]\n\"train.lr\" = [0.05, 0.1]\n"));
  const RunResult first = sweep(dir, {"--jobs", "2"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  const nlohmann::json runs = manifest(dir).at("runs");
  ASSERT_EQ(runs.size(), 4u);
  for (const auto& run : runs) {
    EXPECT_EQ(run.at("status"), "done") << run.dump();
    EXPECT_EQ(run.at("exit_code"), 0);
    const fs::path folder = sweep_folder(dir) / "runs" / run.at("id").get<std::string>();
    EXPECT_TRUE(fs::exists(folder / "config.toml"));
    EXPECT_TRUE(fs::exists(folder / "main" / "summary.json"));
    // Two runs at once on this machine's cores: each got its share of the threads, at most its configured one.
    EXPECT_NE(ssld::test::read_file(folder / "config.toml").find("threads = 1"), std::string::npos);
  }
  EXPECT_EQ(runs[0].at("assignment").at("train.lr"), 0.05);
  EXPECT_EQ(runs[0].at("seed"), 0);
  EXPECT_EQ(runs[3].at("assignment").at("train.lr"), 0.1);
  EXPECT_EQ(runs[3].at("seed"), 1);
  EXPECT_EQ(lines_of(sweep_folder(dir) / "results.csv"), 5) << "a header and one row per run";
  const std::string csv = ssld::test::read_file(sweep_folder(dir) / "results.csv");
  EXPECT_EQ(csv.rfind("id,train.lr,seed,status,stage,best_top1,", 0), 0u) << csv;
  const std::string md = ssld::test::read_file(sweep_folder(dir) / "results.md");
  EXPECT_NE(md.find("## Over seeds"), std::string::npos) << md;
  EXPECT_NE(md.find("| 0.05 | 2 |"), std::string::npos) << "two seeds per learning rate\n" << md;

  // A second invocation finds every run finished: nothing is trained again.
  const auto summary = sweep_folder(dir) / "runs" / runs[0].at("id").get<std::string>() / "main" / "summary.json";
  const auto written = fs::last_write_time(summary);
  const auto start = std::chrono::steady_clock::now();
  const RunResult again = sweep(dir);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  EXPECT_EQ(fs::last_write_time(summary), written);
  EXPECT_EQ(manifest(dir).at("runs")[0].at("started"), runs[0].at("started")) << "the run was not started again";
  EXPECT_EQ(ssld::test::read_file(sweep_folder(dir) / "results.md"), md);

  // `ssld report` rebuilds the same tables and plot from the folder alone.
  const std::string svg = ssld::test::read_file(sweep_folder(dir) / "top1.svg");
  EXPECT_NE(svg.find("<circle"), std::string::npos) << svg;
  const std::string curves = ssld::test::read_file(sweep_folder(dir) / "curves.svg");
  size_t lines = 0;
  for (size_t at = curves.find("<polyline"); at != std::string::npos; at = curves.find("<polyline", at + 1)) ++lines;
  EXPECT_EQ(lines, 4u) << "one validation curve per run\n" << curves;
  for (const char* file : {"results.md", "results.csv", "top1.svg", "curves.svg"}) fs::remove(sweep_folder(dir) / file);
  const RunResult report = ssld::test::run_program(kSsld, {"-q", "report", sweep_folder(dir).string()});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_EQ(ssld::test::read_file(sweep_folder(dir) / "results.md"), md);
  EXPECT_EQ(ssld::test::read_file(sweep_folder(dir) / "results.csv"), csv);
  EXPECT_EQ(ssld::test::read_file(sweep_folder(dir) / "top1.svg"), svg);
  EXPECT_EQ(ssld::test::read_file(sweep_folder(dir) / "curves.svg"), curves);

  // The dry run shows the statuses from the manifest.
  const RunResult dry = sweep(dir, {"--dry-run"});
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("4 runs: 4 done, 0 failed, 0 pending"), std::string::npos) << dry.out;
}

TEST(Sweep, AFailingRunIsRecordedAndDoesNotStopTheOthers) {
  TempDir dir;
  dir.write("c.toml", tiny_config("[sweep.axes]\n\"train.lr\" = [-1.0, 0.05]\n"));
  const RunResult result = sweep(dir);
  EXPECT_EQ(result.exit_code, 4) << "the documented 'some runs failed' exit code\n" << result.out << result.err;
  const nlohmann::json runs = manifest(dir).at("runs");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].at("status"), "failed");
  EXPECT_EQ(runs[0].at("exit_code"), 2);
  EXPECT_NE(runs[0].at("error").get<std::string>().find("lr"), std::string::npos) << runs[0].dump();
  const fs::path failed = sweep_folder(dir) / "runs" / runs[0].at("id").get<std::string>();
  EXPECT_NE(ssld::test::read_file(failed / "error.txt").find("must be positive"), std::string::npos);
  // The manifest quotes the child's own failure file.
  const auto failure = nlohmann::json::parse(ssld::test::read_file(failed / "failure.json"));
  EXPECT_EQ(failure.at("exit_status"), 2);
  EXPECT_EQ(runs[0].at("error"), failure.at("error"));
  EXPECT_EQ(runs[1].at("status"), "done");
  const std::string md = ssld::test::read_file(sweep_folder(dir) / "results.md");
  EXPECT_NE(md.find("## Failed runs"), std::string::npos) << md;
  EXPECT_EQ(lines_of(sweep_folder(dir) / "results.csv"), 3);
}

TEST(Sweep, AnInterruptedSweepResumesItsUnfinishedRunOnTheNextInvocation) {
  TempDir dir;
  dir.write("c.toml", tiny_config("[sweep]\nseeds = [0, 1]\n", 3));
  const pid_t child = fork();
  if (child == 0) {
    const std::string config = (dir / "c.toml").string();
    freopen("/dev/null", "w", stdout);  // the sweep's tables; the test reads the files
    execl(kSsld.c_str(), kSsld.c_str(), "-q", "sweep", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the first run's first logged steps, then stop the sweep as a user or scheduler would.
  fs::path steps;
  for (int i = 0; i < 600 && steps.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::error_code ignored;
    for (const auto& entry : fs::recursive_directory_iterator(sweep_folder(dir), ignored))
      if (entry.path().filename() == "metrics_steps.jsonl" && fs::file_size(entry.path(), ignored) > 0)
        steps = entry.path();
  }
  ASSERT_FALSE(steps.empty()) << "no run started";
  kill(child, SIGTERM);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3) << "the documented 'interrupted' exit code";
  const fs::path run = steps.parent_path().parent_path();
  EXPECT_TRUE(fs::exists(run / "main" / "checkpoints" / "last.safetensors"));
  for (const auto& [id, state] : statuses(manifest(dir))) EXPECT_EQ(state, "pending") << id;

  const RunResult resumed = sweep(dir);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  for (const auto& [id, state] : statuses(manifest(dir))) EXPECT_EQ(state, "done") << id;
  EXPECT_NE(ssld::test::read_file(run / "stderr.txt").find("resuming from"), std::string::npos)
      << "the interrupted run continued from its checkpoint";
}

TEST(Sweep, DryRunListsTheShippedLossSweepAndConfigErrorsStopBeforeAnyRun) {
  const RunResult dry = ssld::test::run_program(
      kSsld, {"-q", "sweep", std::string(SSLD_SOURCE_DIR) + "/configs/sweeps/fmnist_losses.toml", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("12 runs:"), std::string::npos) << dry.out;
  for (const char* loss : {"ssld", "jsd", "kl", "dkd", "dist", "ce"})
    EXPECT_NE(dry.out.find(std::string("loss.0.type=") + loss + ",seed=1-"), std::string::npos) << loss << dry.out;

  TempDir dir;
  dir.write("c.toml", tiny_config("[sweep]\nmode = \"zip\"\n[sweep.axes]\n\"train.lr\" = [0.1, 0.05]\n"
                                  "\"student.width\" = [4]\n"));
  const RunResult mismatch = sweep(dir);
  EXPECT_EQ(mismatch.exit_code, 2);
  EXPECT_NE(mismatch.err.find("c.toml:"), std::string::npos) << mismatch.err;
  EXPECT_NE(mismatch.err.find("same length"), std::string::npos) << mismatch.err;
  EXPECT_FALSE(fs::exists(sweep_folder(dir))) << "nothing ran";

  dir.write("c.toml", tiny_config("[sweep.axes]\n\"studnet.width\" = [4, 8]\n"));
  const RunResult unknown = sweep(dir, {"--dry-run"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("did you mean 'student'"), std::string::npos) << unknown.err;
}

// Runs that share a teacher, its data and its augmentation stream (here: a sweep over the loss)
// compute the teacher's soft labels once: the first run fills the [teacher_cache] (by default
// under the sweep's runs folder), the others read it.
TEST(Sweep, RunsSharingATeacherComputeItsSoftLabelsOnce) {
  TempDir dir;
  dir.write("teacher.toml", tiny_config(""));
  ASSERT_EQ(ssld::test::run_program(kSsld, {"-q", "train", (dir / "teacher.toml").string()}).exit_code, 0);
  dir.write("c.toml", tiny_config(R"(
[teacher]
type = "checkpoint"
weights = "runs/sw/main/student.safetensors"
student = { type = "small_cnn", width = 4, depth = 1 }
[teacher_cache]
[sweep.axes]
"loss.0.type" = ["ssld", "kl"]
)", 2));
  const RunResult result = sweep(dir, {"--set", "run.name=cached"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const fs::path folder = dir / "runs" / "cached";
  const fs::path store = folder / "runs" / "teacher_cache";
  ASSERT_TRUE(fs::is_directory(store));
  std::vector<fs::path> keys(fs::directory_iterator(store), {});
  ASSERT_EQ(keys.size(), 1u) << "both runs share one key";
  EXPECT_TRUE(fs::exists(keys[0] / "epoch_00001.bin"));
  std::ifstream in(folder / "manifest.json");
  const nlohmann::json runs = nlohmann::json::parse(in).at("runs");
  ASSERT_EQ(runs.size(), 2u);
  const std::string first = ssld::test::read_file(folder / "runs" / runs[0].at("id").get<std::string>() / "log.txt");
  const std::string second = ssld::test::read_file(folder / "runs" / runs[1].at("id").get<std::string>() / "log.txt");
  EXPECT_NE(first.find("teacher cache: 0 steps read, 40 computed"), std::string::npos) << first;
  EXPECT_NE(second.find("teacher cache: 40 steps read, 0 computed"), std::string::npos) << second;
  EXPECT_NE(ssld::test::read_file(folder / "results.csv").find("teacher_share"), std::string::npos);
}

// Two sweeps of two runs each (`--jobs 2`), started together on one teacher-cache store: four
// processes race to fill one key. No run fails, and every run's student equals the one its
// assignment trains with the online teacher (20 trials, a fresh store each).
TEST(Sweep, TwoSweepsFillingOneTeacherCacheStoreAtOnceAllSucceed) {
  TempDir dir;
  dir.write("teacher.toml", tiny_config(""));
  ASSERT_EQ(ssld::test::run_program(kSsld, {"-q", "train", (dir / "teacher.toml").string()}).exit_code, 0);
  auto distill = [&](const std::string& cache) {
    return tiny_config(R"(
[teacher]
type = "checkpoint"
weights = "runs/sw/main/student.safetensors"
student = { type = "small_cnn", width = 4, depth = 1 }
)" + cache + R"(
[sweep.axes]
"train.lr" = [0.05, 0.1]
)");
  };
  auto run_sweep = [&](const std::string& config, const std::string& name) {
    return ssld::test::run_program(kSsld, {"-q", "sweep", (dir / config).string(), "--jobs", "2", "--set",
                                           "run.name=" + name, "--set", "loss.0.type=ssld"});
  };
  auto students = [&](const std::string& name) {
    std::map<std::string, std::string> out;
    const auto manifest = nlohmann::json::parse(ssld::test::read_file(dir / "runs" / name / "manifest.json"));
    for (const auto& run : manifest.at("runs")) {
      const std::string id = run.at("id");
      out[id] = ssld::test::read_file(dir / "runs" / name / "runs" / id / "main" / "student.safetensors");
    }
    return out;
  };
  dir.write("online.toml", distill(""));
  const RunResult online = run_sweep("online.toml", "online");
  ASSERT_EQ(online.exit_code, 0) << online.err;
  const auto expected = students("online");
  ASSERT_EQ(expected.size(), 2u);

  for (int trial = 0; trial < 20; ++trial) {
    const std::string store = (dir / ("store" + std::to_string(trial))).string();
    const std::string config = "cached" + std::to_string(trial) + ".toml";
    dir.write(config, distill("[teacher_cache]\nstore = \"" + store + "\"\n"));
    const std::vector<std::string> names = {"a" + std::to_string(trial), "b" + std::to_string(trial)};
    std::vector<std::future<RunResult>> sweeps;
    for (const auto& name : names) sweeps.push_back(std::async(std::launch::async, run_sweep, config, name));
    for (size_t i = 0; i < names.size(); ++i) {
      const RunResult result = sweeps[i].get();
      EXPECT_EQ(result.exit_code, 0) << "trial " << trial << ", sweep " << names[i] << ":\n" << result.err;
    }
    for (const auto& name : names)
      EXPECT_EQ(students(name), expected) << "trial " << trial << ", sweep " << name;
    std::vector<fs::path> keys(fs::directory_iterator(store), {});
    ASSERT_EQ(keys.size(), 1u) << "trial " << trial;
    EXPECT_TRUE(fs::exists(keys[0] / "epoch_00000.bin")) << "trial " << trial;
  }
}
