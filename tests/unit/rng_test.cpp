#include <ssld/rng.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <set>

TEST(Rng, Philox4x32KnownAnswers) {
  // Known-answer vectors of Random123 (kat_vectors: philox4x32 10 rounds).
  EXPECT_EQ(ssld::Rng::philox4x32({0, 0, 0, 0}, {0, 0}),
            (std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(ssld::Rng::philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
            (std::array<uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
}

TEST(Rng, SameKeySameStreamAnyOrder) {
  ssld::Rng a(1, 2, 3, ssld::Rng::purpose_of("crop"));
  ssld::Rng b(1, 2, 3, ssld::Rng::purpose_of("crop"));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u32(), b.next_u32());
}

TEST(Rng, EveryKeyPartChangesTheStream) {
  const uint64_t crop = ssld::Rng::purpose_of("crop");
  const uint32_t base = ssld::Rng(1, 2, 3, crop).next_u32();
  EXPECT_NE(base, ssld::Rng(9, 2, 3, crop).next_u32());
  EXPECT_NE(base, ssld::Rng(1, 9, 3, crop).next_u32());
  EXPECT_NE(base, ssld::Rng(1, 2, 9, crop).next_u32());
  EXPECT_NE(base, ssld::Rng(1, 2, 3, ssld::Rng::purpose_of("flip")).next_u32());
}

TEST(Rng, DistributionsHaveTheRightMoments) {
  ssld::Rng rng(42, 0, 0, 0);
  const int n = 200000;
  double sum = 0, sum_sq = 0, normal_sum = 0, normal_sq = 0;
  std::set<int64_t> seen;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum_sq += u * u;
    const double z = rng.normal();
    normal_sum += z;
    normal_sq += z * z;
    const int64_t k = rng.randint(-3, 4);
    ASSERT_GE(k, -3);
    ASSERT_LT(k, 4);
    seen.insert(k);
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(sum_sq / n - 0.25, 1.0 / 12, 0.003);
  EXPECT_NEAR(normal_sum / n, 0.0, 0.01);
  EXPECT_NEAR(normal_sq / n, 1.0, 0.02);
  EXPECT_EQ(seen.size(), 7u);
}
