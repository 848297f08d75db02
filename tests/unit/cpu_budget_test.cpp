// Default thread counts follow the process's CPU budget: OMP_NUM_THREADS, else the affinity
// mask capped by the cgroup quota; `ssld --version` says what it chose and why.
#include "core/cpu_budget.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

using ssld::host::cpu_budget_from;

TEST(CpuBudget, OmpNumThreadsThenTheAffinityMaskCappedByTheQuota) {
  EXPECT_EQ(cpu_budget_from("3", 16, 2.0, 64).threads, 3);
  EXPECT_EQ(cpu_budget_from("3", 16, 2.0, 64).reason, "OMP_NUM_THREADS=3");
  EXPECT_EQ(cpu_budget_from(nullptr, 4, std::nullopt, 64).threads, 4);
  EXPECT_EQ(cpu_budget_from(nullptr, 4, std::nullopt, 64).reason, "affinity mask: 4 CPUs");
  const auto capped = cpu_budget_from(nullptr, 16, 2.5, 64);  // docker --cpus 2.5 on a 16-CPU mask
  EXPECT_EQ(capped.threads, 3);
  EXPECT_EQ(capped.reason, "affinity mask: 16 CPUs, cgroup quota: 2.5 CPUs");
  EXPECT_EQ(cpu_budget_from(nullptr, 2, 8.0, 64).threads, 2);  // a quota above the mask changes nothing
  EXPECT_EQ(cpu_budget_from(nullptr, 0, std::nullopt, 6).threads, 6);  // no mask known: the hardware
  EXPECT_EQ(cpu_budget_from(nullptr, 4, 0.2, 64).threads, 1);
  const auto nonsense = cpu_budget_from("four", 4, std::nullopt, 64);
  EXPECT_EQ(nonsense.threads, 4);
  EXPECT_NE(nonsense.reason.find("'four' is not a thread count"), std::string::npos) << nonsense.reason;
}
