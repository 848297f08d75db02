// How many CPU threads ssld may use by default, as a good citizen of a shared machine: what
// OMP_NUM_THREADS says when set (torchrun sets 1 per rank), otherwise the CPUs of the process's
// affinity mask (taskset, a scheduler's cpuset), capped by the cgroup CPU quota (a container's
// --cpus), not the machine's core count alone.
#pragma once

#include <optional>
#include <string>

namespace ssld::host {

struct CpuBudget {
  int threads = 1;
  std::string reason;  // "OMP_NUM_THREADS=4", "affinity mask: 8 CPUs, cgroup quota: 2.5 CPUs", ...
};

// The budget from its inputs (the environment variable's text or null, the affinity mask's CPU
// count or 0 when unknown, the quota in CPUs when there is one, the hardware's thread count).
CpuBudget cpu_budget_from(const char* omp_num_threads, int affinity_cpus, std::optional<double> quota_cpus,
                          int hardware_threads);

// This process's budget, read once from the environment, sched_getaffinity and
// /sys/fs/cgroup (v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us).
const CpuBudget& cpu_budget();

}  // namespace ssld::host
