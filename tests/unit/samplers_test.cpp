// Samplers: sharding covers each position of an epoch exactly once across ranks with equal
// step counts, the mixed sampler's shares, and batches as a pure function of (epoch, step).
#include "plugin_host.hpp"

#include <gtest/gtest.h>

#include <map>

using ssld::test::PluginHost;

namespace {

std::string config(const std::string& sampler, int64_t batch_size, const std::vector<int64_t>& sizes) {
  std::string text = "[data.train]\nbatch_size = " + std::to_string(batch_size) + "\nsampler = " + sampler + "\n";
  for (int64_t size : sizes) text += "[[data.train.sources]]\ntype = \"stalling\"\nsize = " + std::to_string(size) + "\n";
  return text;
}

using Key = std::pair<int32_t, int64_t>;

// Every (source, index) drawn in `epoch` by all ranks, with how often.
std::map<Key, int> draws_of_epoch(PluginHost& host, const std::string& sampler, int64_t batch_size,
                                  const std::vector<int64_t>& sizes, int64_t world, int64_t epoch,
                                  int64_t* steps_out = nullptr) {
  std::map<Key, int> draws;
  int64_t steps = -1;
  for (int64_t rank = 0; rank < world; ++rank) {
    auto pipeline = host.pipeline(config(sampler, batch_size, sizes), "train", {rank, world});
    const int64_t rank_steps = pipeline->sampler->steps_per_epoch();
    if (steps >= 0) EXPECT_EQ(rank_steps, steps) << "ranks disagree on the number of steps";
    steps = rank_steps;
    for (int64_t step = 0; step < rank_steps; ++step)
      for (const auto& ref : pipeline->sampler->batch(epoch, step)) ++draws[{ref.source, ref.index}];
  }
  if (steps_out) *steps_out = steps;
  return draws;
}

}  // namespace

TEST(Samplers, SequentialAndRandomCoverEveryIndexOncePerEpochOnAnyWorldSize) {
  PluginHost host;
  for (const std::string sampler : {"{ type = \"sequential\" }", "{ type = \"random\", drop_last = false }"}) {
    for (int64_t world : {1, 2, 3}) {
      int64_t steps = 0;
      const auto draws = draws_of_epoch(host, sampler, 8, {50, 53}, world, 1, &steps);
      EXPECT_EQ(draws.size(), 103u) << sampler << " world " << world;
      for (const auto& [key, count] : draws) EXPECT_EQ(count, 1) << sampler << " draws " << key.second << " twice";
      EXPECT_EQ(steps, (103 + 8 * world - 1) / (8 * world));
    }
  }
}

TEST(Samplers, DropLastTakesWholeGlobalBatchesWithoutRepeats) {
  PluginHost host;
  int64_t steps = 0;
  const auto draws = draws_of_epoch(host, "{ type = \"random\" }", 8, {103}, 2, 0, &steps);
  EXPECT_EQ(steps, 6);  // 103 // 16
  EXPECT_EQ(draws.size(), 96u);
  for (const auto& [key, count] : draws) EXPECT_EQ(count, 1);
}

TEST(Samplers, RandomOrderChangesWithEpochAndSeedAndIsReproducible) {
  PluginHost host;
  const std::string text = config("{ type = \"random\" }", 10, {100});
  auto order = [&](int64_t epoch, uint64_t seed) {
    auto pipeline = host.pipeline(text, "train", {}, seed);
    std::vector<int64_t> indices;
    for (const auto& ref : pipeline->sampler->batch(epoch, 0)) indices.push_back(ref.index);
    return indices;
  };
  EXPECT_EQ(order(0, 1), order(0, 1));
  EXPECT_NE(order(0, 1), order(1, 1));
  EXPECT_NE(order(0, 1), order(0, 2));
}

TEST(Samplers, MixedTakesItsShareFromEachSourceAndCyclesTheSmallOne) {
  PluginHost host;
  auto pipeline = host.pipeline(config("{ type = \"mixed\", fractions = [0.25, 0.75] }", 8, {20, 120}));
  ASSERT_TRUE(pipeline);
  EXPECT_EQ(pipeline->sampler->steps_per_epoch(), 20);  // the unlabeled source, 6 per step, seen once
  std::map<Key, int> draws;
  std::set<std::tuple<int32_t, int64_t, int64_t>> keys;
  for (int64_t step = 0; step < 20; ++step) {
    const auto batch = pipeline->sampler->batch(0, step);
    ASSERT_EQ(batch.size(), 8u);
    int from_first = 0;
    for (const auto& ref : batch) {
      from_first += ref.source == 0;
      ++draws[{ref.source, ref.index}];
      EXPECT_TRUE(keys.insert({ref.source, ref.index, ref.pass}).second) << "a (source, index, pass) repeated";
    }
    EXPECT_EQ(from_first, 2);
  }
  // 40 draws from 20 labeled samples: exactly two passes; 120 from 120 unlabeled: one.
  for (const auto& [key, count] : draws) EXPECT_EQ(count, key.first == 0 ? 2 : 1);
  EXPECT_EQ(draws.size(), 140u);
}

TEST(Samplers, MixedFractionsMustMatchTheSources) {
  PluginHost host;
  const auto problems = host.pipeline_problems(config("{ type = \"mixed\", fractions = [1.0] }", 8, {20, 120}));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("1 fractions for 2 sources"), std::string::npos) << problems[0];
}

TEST(Samplers, ClassBalancedDrawsClassesEquallyAndShards) {
  PluginHost host;
  // Labels are index % 10: classes 0..9 of 10 samples each; batch 10 -> one of each class.
  int64_t steps = 0;
  const auto draws = draws_of_epoch(host, "{ type = \"class_balanced\" }", 10, {100}, 2, 3, &steps);
  EXPECT_EQ(steps, 5);
  EXPECT_EQ(draws.size(), 100u);
  auto pipeline = host.pipeline(config("{ type = \"class_balanced\" }", 10, {100}));
  std::set<int64_t> classes;
  for (const auto& ref : pipeline->sampler->batch(0, 0)) classes.insert(ref.index % 10);
  EXPECT_EQ(classes.size(), 10u);
}

TEST(Samplers, BatchesArePureFunctionsOfEpochAndStep) {
  PluginHost host;
  for (const std::string sampler :
       {"{ type = \"random\" }", "{ type = \"mixed\", fractions = [0.5, 0.5] }", "{ type = \"class_balanced\" }"}) {
    auto first = host.pipeline(config(sampler, 8, {40, 60}));
    auto restored = host.pipeline(config(sampler, 8, {40, 60}));  // as after a restart
    for (int64_t step : {3, 0, 2}) {
      const auto a = first->sampler->batch(2, step);
      const auto b = restored->sampler->batch(2, step);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].source, b[i].source);
        EXPECT_EQ(a[i].index, b[i].index);
        EXPECT_EQ(a[i].pass, b[i].pass);
      }
    }
  }
}
