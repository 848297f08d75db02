// The selection rules of `ssld mine` on hand-made candidates: exact top-k per class, ties,
// classes with fewer than k candidates, thresholds, class restriction, max_total, balance, and
// a state that round-trips through JSON, and shards merged into what one stream selects.
#include "mine/candidate_selection.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace ssld::host {
namespace {

Candidate make(int64_t position, int64_t predicted, double score) {
  Candidate c;
  c.position = position;
  c.index = position;
  c.id = static_cast<uint64_t>(1000 + position);
  c.predicted = predicted;
  c.probability = score;
  c.score = score;
  return c;
}

std::vector<int64_t> positions(const std::vector<Candidate>& selected) {
  std::vector<int64_t> out;
  for (const auto& c : selected) out.push_back(c.position);
  return out;
}

SelectionSettings top_k(int64_t k) {
  SelectionSettings settings;
  settings.top_k_per_class = k;
  return settings;
}

TEST(CandidateSelection, KeepsExactlyTheTopKOfEachClassBestFirst) {
  CandidateSelection selection(top_k(2), 2);
  // class 0: scores 0.5 0.9 0.7 0.8 -> 0.9 (p1), 0.8 (p3); class 1: 0.6 0.95 0.3 -> 0.95 (p5), 0.6 (p4)
  const std::vector<std::pair<int64_t, double>> stream = {{0, 0.5}, {0, 0.9}, {0, 0.7}, {0, 0.8},
                                                          {1, 0.6}, {1, 0.95}, {1, 0.3}};
  for (size_t i = 0; i < stream.size(); ++i) selection.offer(make(int64_t(i), stream[i].first, stream[i].second));
  const auto result = selection.select();
  EXPECT_EQ(positions(result.selected), (std::vector<int64_t>{1, 3, 5, 4}));
  EXPECT_EQ(result.rejections.not_in_top_k, 3);
}

TEST(CandidateSelection, TiesGoToTheEarlierCandidateWhateverTheOrderOfArrival) {
  CandidateSelection selection(top_k(2), 1);
  for (int64_t p : {4, 2, 7, 1, 9}) selection.offer(make(p, 0, 0.5));
  EXPECT_EQ(positions(selection.select().selected), (std::vector<int64_t>{1, 2}));
}

TEST(CandidateSelection, AClassWithFewerThanKCandidatesKeepsThemAll) {
  CandidateSelection selection(top_k(3), 3);
  selection.offer(make(0, 0, 0.4));
  selection.offer(make(1, 2, 0.9));
  for (int64_t p = 2; p < 7; ++p) selection.offer(make(p, 1, 0.1 * double(p)));
  const auto result = selection.select();
  EXPECT_EQ(positions(result.selected), (std::vector<int64_t>{0, 6, 5, 4, 1}));
  EXPECT_EQ(result.rejections.not_in_top_k, 2);
}

TEST(CandidateSelection, MinConfidenceAndClassesRejectAndCountWhy) {
  SelectionSettings settings = top_k(10);
  settings.min_confidence = 0.5;
  settings.classes = {1};
  CandidateSelection selection(settings, 3);
  EXPECT_EQ(selection.offer(make(0, 0, 0.9)), CandidateSelection::Verdict::ClassNotSelected);
  EXPECT_EQ(selection.offer(make(1, 1, 0.49)), CandidateSelection::Verdict::BelowMinConfidence);
  EXPECT_EQ(selection.offer(make(2, 1, 0.5)), CandidateSelection::Verdict::Kept);  // the threshold is inclusive
  EXPECT_EQ(selection.offer(make(3, 2, 0.2)), CandidateSelection::Verdict::ClassNotSelected);
  const auto result = selection.select();
  EXPECT_EQ(positions(result.selected), (std::vector<int64_t>{2}));
  EXPECT_EQ(result.rejections.class_not_selected, 2);
  EXPECT_EQ(result.rejections.below_min_confidence, 1);
}

TEST(CandidateSelection, MaxTotalKeepsTheBestOverallWithoutBalance) {
  SelectionSettings settings = top_k(3);
  settings.max_total = 3;
  CandidateSelection selection(settings, 2);
  selection.offer(make(0, 0, 0.9));
  selection.offer(make(1, 0, 0.8));
  selection.offer(make(2, 0, 0.7));
  selection.offer(make(3, 1, 0.85));
  selection.offer(make(4, 1, 0.1));
  const auto result = selection.select();
  EXPECT_EQ(positions(result.selected), (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(result.rejections.over_max_total, 2);
}

TEST(CandidateSelection, EqualBalanceSplitsMaxTotalAndStrictCutsToTheSmallestClass) {
  SelectionSettings settings;
  settings.max_total = 4;
  settings.balance = ClassBalance::Equal;
  CandidateSelection equal(settings, 2);
  EXPECT_EQ(equal.capacity_per_class(), 2);
  settings.balance = ClassBalance::Strict;
  settings.max_total = 0;
  settings.top_k_per_class = 5;
  CandidateSelection strict(settings, 3);
  for (int64_t p = 0; p < 6; ++p) {
    equal.offer(make(p, 0, 0.1 * double(p)));
    strict.offer(make(p, 0, 0.1 * double(p)));
  }
  equal.offer(make(6, 1, 0.5));
  strict.offer(make(6, 1, 0.5));
  strict.offer(make(7, 1, 0.6));  // class 2 stays empty: it does not count
  EXPECT_EQ(positions(equal.select().selected), (std::vector<int64_t>{5, 4, 6}));
  const auto result = strict.select();
  EXPECT_EQ(positions(result.selected), (std::vector<int64_t>{5, 4, 7, 6}));
  EXPECT_EQ(result.rejections.class_balance, 3);
}

TEST(CandidateSelection, StateRoundTripsThroughJson) {
  CandidateSelection first(top_k(2), 2), resumed(top_k(2), 2), straight(top_k(2), 2);
  const std::vector<double> scores = {0.3, 0.9, 0.1, 0.7, 0.8, 0.2, 0.95, 1.0 / 3.0};
  for (size_t i = 0; i < scores.size(); ++i) {
    const Candidate c = make(int64_t(i), int64_t(i % 2), scores[i]);
    straight.offer(c);
    if (i < 4) first.offer(c);
    else {
      if (i == 4) resumed.load_json(nlohmann::json::parse(first.to_json().dump()));
      resumed.offer(c);
    }
  }
  EXPECT_EQ(positions(resumed.select().selected), positions(straight.select().selected));
  EXPECT_EQ(resumed.select().selected.back().score, straight.select().selected.back().score);  // exact doubles
  EXPECT_EQ(resumed.rejections().not_in_top_k, straight.rejections().not_in_top_k);
}

// Ranks mine strided shards of one stream (as the sequential sampler deals them); rank 0 merges.
// Coarse scores make many ties, which only the global position breaks.
TEST(CandidateSelection, MergedShardsSelectAndCountWhatOneStreamDoes) {
  for (const ClassBalance balance : {ClassBalance::None, ClassBalance::Strict}) {
    for (const int64_t world : {2, 3}) {
      SelectionSettings settings = top_k(5);
      settings.min_confidence = 0.2;
      settings.max_total = 12;
      settings.classes = {0, 1, 3};
      settings.balance = balance;
      CandidateSelection straight(settings, 4);
      std::vector<CandidateSelection> shards(static_cast<size_t>(world), CandidateSelection(settings, 4));
      for (int64_t i = 0; i < 200; ++i) {
        const Candidate c = make(i, (i * 7) % 4, double((i * 37) % 11) / 10.0);
        straight.offer(c);
        shards[static_cast<size_t>(i % world)].offer(c);
      }
      CandidateSelection merged(settings, 4);
      for (int64_t rank = world - 1; rank >= 0; --rank) merged.merge(shards[static_cast<size_t>(rank)]);
      const auto expected = straight.select(), got = merged.select();
      ASSERT_EQ(positions(got.selected), positions(expected.selected)) << "world " << world;
      EXPECT_EQ(got.rejections.class_not_selected, expected.rejections.class_not_selected);
      EXPECT_EQ(got.rejections.below_min_confidence, expected.rejections.below_min_confidence);
      EXPECT_EQ(got.rejections.not_in_top_k, expected.rejections.not_in_top_k);
      EXPECT_EQ(got.rejections.class_balance, expected.rejections.class_balance);
      EXPECT_EQ(got.rejections.over_max_total, expected.rejections.over_max_total);
      EXPECT_GT(expected.rejections.not_in_top_k, 0);
    }
  }
}

TEST(ConfidenceScore, MaxProbabilityMarginAndEntropyAsDocumented) {
  const float p[4] = {0.1f, 0.6f, 0.2f, 0.1f};
  EXPECT_NEAR(confidence_score(p, 4, ScoreKind::MaxProbability), 0.6, 1e-6);
  EXPECT_NEAR(confidence_score(p, 4, ScoreKind::Margin), 0.4, 1e-6);
  const double entropy = -(2 * 0.1 * std::log(0.1) + 0.6 * std::log(0.6) + 0.2 * std::log(0.2));
  EXPECT_NEAR(confidence_score(p, 4, ScoreKind::Entropy), 1.0 - entropy / std::log(4.0), 1e-6);
  const float uniform[4] = {0.25f, 0.25f, 0.25f, 0.25f}, one_hot[4] = {0, 0, 1, 0};
  EXPECT_NEAR(confidence_score(uniform, 4, ScoreKind::Entropy), 0.0, 1e-6);
  EXPECT_NEAR(confidence_score(one_hot, 4, ScoreKind::Entropy), 1.0, 1e-6);
  EXPECT_NEAR(confidence_score(uniform, 4, ScoreKind::Margin), 0.0, 1e-6);
}

}  // namespace
}  // namespace ssld::host
