// The multi-process layer on its own: the torchrun environment, c10d collectives over Gloo on
// loopback, bucketed gradient averaging against one process with the whole batch, and a dead,
// hung or missing rank failing the others within the timeout. Ranks are separate processes
// (ssld_dist_worker) started by the test launch helper.
#include "dist/dist_env.hpp"
#include "dist_launch.hpp"

#include <ssld/error.hpp>

#include <gtest/gtest.h>

using ssld::host::DistEnv;
using ssld::host::read_dist_env;
using ssld::test::LaunchedRanks;
using ssld::test::TempDir;

namespace {

const std::string kWorker = SSLD_DIST_WORKER;

std::optional<DistEnv> env_of(const std::map<std::string, std::string>& vars) {
  return read_dist_env([&](const std::string& name) -> std::optional<std::string> {
    auto found = vars.find(name);
    return found == vars.end() ? std::nullopt : std::optional<std::string>(found->second);
  });
}

std::string error_reading(const std::map<std::string, std::string>& vars) {
  return ssld::test::error_of<ssld::Error>([&] { env_of(vars); });
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST(DistEnv, NoVariablesMeansOneProcess) { EXPECT_FALSE(env_of({}).has_value()); }

TEST(DistEnv, ReadsTorchrunVariables) {
  const auto env = env_of({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node0"},
                           {"MASTER_PORT", "29500"}});
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->world_size, 8);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->master_addr, "node0");
  EXPECT_EQ(env->master_port, 29500);
  // LOCAL_RANK may be left out on one node: it is RANK then.
  EXPECT_EQ(env_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}})->local_rank, 1);
}

TEST(DistEnv, PartialOrInvalidSetsAreRefusedByName) {
  EXPECT_NE(error_reading({{"RANK", "0"}}).find("WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set"), std::string::npos)
      << error_reading({{"RANK", "0"}});
  const std::map<std::string, std::string> base = {{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "29500"}};
  auto with = [&](const std::string& name, const std::string& value) {
    auto vars = base;
    vars["RANK"] = "0";
    vars[name] = value;
    return error_reading(vars);
  };
  EXPECT_NE(with("RANK", "2").find("RANK='2' is not an integer in [0, 1]"), std::string::npos) << with("RANK", "2");
  EXPECT_NE(with("MASTER_PORT", "http").find("MASTER_PORT='http'"), std::string::npos);
  EXPECT_NE(with("WORLD_SIZE", "0").find("WORLD_SIZE='0'"), std::string::npos);
}

TEST(DistCollectives, BroadcastSumAnyAllAndBarrierOverGlooOnLoopback) {
  TempDir logs;
  for (int world : {2, 3}) {
    auto results = LaunchedRanks(kWorker, {"collectives", "30"}, world, logs.path()).wait();
    for (int r = 0; r < world; ++r) EXPECT_EQ(results[r].exit_code, 0) << "rank " << r << ": " << results[r].err;
  }
}

TEST(DistGradients, BucketedAverageEqualsTheWholeBatchGradientInOneProcess) {
  TempDir logs;
  for (const std::string scenario : {"gradients", "gradients_one_bucket"}) {
    auto results = LaunchedRanks(kWorker, {scenario, "30"}, 2, logs.path()).wait();
    for (int r = 0; r < 2; ++r) EXPECT_EQ(results[r].exit_code, 0) << scenario << " rank " << r << ": " << results[r].err;
    if (scenario == "gradients")  // one bucket per parameter: all but the unused layer's go during backward
      EXPECT_NE(results[0].out.find("6 buckets, 4 launched during backward"), std::string::npos) << results[0].out;
  }
}

TEST(DistBatchNorm, SyncLeavesTheAverageOfEveryRanksStatisticsOrRankZeros) {
  TempDir logs;
  for (const std::string scenario : {"batchnorm_stats", "batchnorm_stats_rank0"})
    for (int world : {2, 3}) {
      auto results = LaunchedRanks(kWorker, {scenario, "30"}, world, logs.path()).wait();
      for (int r = 0; r < world; ++r)
        EXPECT_EQ(results[r].exit_code, 0) << scenario << " world " << world << " rank " << r << ": " << results[r].err;
    }
}

TEST(DistFailures, ADeadRankFailsTheOtherWithAClearMessage) {
  TempDir logs;
  const auto start = std::chrono::steady_clock::now();
  auto results = LaunchedRanks(kWorker, {"dies", "5"}, 2, logs.path()).wait(std::chrono::seconds(60));
  EXPECT_LT(seconds_since(start), 30);
  EXPECT_EQ(results[0].exit_code, 2) << results[0].err;
  EXPECT_NE(results[0].err.find("[dist] rank 0 of 2: an all-reduce failed"), std::string::npos) << results[0].err;
  EXPECT_EQ(results[0].err.find("frame #"), std::string::npos) << "no C++ stack trace: " << results[0].err;
}

TEST(DistFailures, AHungRankFailsTheOtherAfterTheTimeout) {
  TempDir logs;
  const auto start = std::chrono::steady_clock::now();
  auto results = LaunchedRanks(kWorker, {"hangs", "3"}, 2, logs.path()).wait(std::chrono::seconds(30));
  EXPECT_EQ(results[0].exit_code, 2) << results[0].err;  // rank 1 sleeps 8 s without joining the all-reduce
  EXPECT_NE(results[0].err.find("timeout_s = 3 s"), std::string::npos) << results[0].err;
  EXPECT_NE(results[0].err.find("timed out"), std::string::npos) << results[0].err;
  // It gave up after the timeout, not when rank 1 woke up.
  const double waited = std::stod(results[0].out.substr(results[0].out.find("failed after ") + 13));
  EXPECT_GT(waited, 2.5);
  EXPECT_LT(waited, 7.0);
  EXPECT_LT(seconds_since(start), 30);
}

TEST(DistFailures, AMissingRankFailsTheRendezvousWithinTheTimeout) {
  TempDir logs;
  // WORLD_SIZE=2 but only rank 0 starts: launch a world of 1 process with the variables of 2.
  auto results = LaunchedRanks(kWorker, {"collectives", "3"}, 1, logs.path(), {{"WORLD_SIZE", "2"}}).wait(std::chrono::seconds(30));
  EXPECT_EQ(results[0].exit_code, 2) << results[0].err;
  EXPECT_NE(results[0].err.find("[dist] rank 0 of 2"), std::string::npos) << results[0].err;
  EXPECT_NE(results[0].err.find("timeout_s = 3 s"), std::string::npos) << results[0].err;
}
