#include "core/cpu_budget.hpp"

#include <sched.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace ssld::host {

namespace {

// A cgroup file's first line; empty when it does not exist.
std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// CPUs the cgroup lets this process use: v2 "cpu.max" holds "QUOTA PERIOD" or "max PERIOD";
// v1 splits them into two files, -1 meaning no limit.
std::optional<double> cgroup_quota_cpus() {
  double quota = 0, period = 0;
  std::istringstream v2(first_line("/sys/fs/cgroup/cpu.max"));
  std::string quota_text;
  if (v2 >> quota_text >> period) {
    if (quota_text == "max" || period <= 0) return std::nullopt;
    quota = std::atof(quota_text.c_str());
  } else {
    const std::string v1_quota = first_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    const std::string v1_period = first_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    if (v1_quota.empty() || v1_period.empty()) return std::nullopt;
    quota = std::atof(v1_quota.c_str());
    period = std::atof(v1_period.c_str());
  }
  if (quota <= 0 || period <= 0) return std::nullopt;
  return quota / period;
}

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}

std::string cpus_text(double cpus) {
  std::ostringstream text;
  text << cpus << (cpus == 1 ? " CPU" : " CPUs");
  return text.str();
}

}  // namespace

CpuBudget cpu_budget_from(const char* omp_num_threads, int affinity, std::optional<double> quota, int hardware) {
  if (omp_num_threads != nullptr && *omp_num_threads != '\0') {
    char* end = nullptr;
    const long value = std::strtol(omp_num_threads, &end, 10);
    if (*end == '\0' && value > 0 && value <= 4096)
      return {static_cast<int>(value), "OMP_NUM_THREADS=" + std::string(omp_num_threads)};
  }
  CpuBudget budget;
  if (affinity > 0) {
    budget.threads = affinity;
    budget.reason = "affinity mask: " + cpus_text(affinity);
  } else {
    budget.threads = std::max(1, hardware);
    budget.reason = "hardware: " + cpus_text(budget.threads);
  }
  if (quota && std::ceil(*quota) < budget.threads) {
    budget.threads = std::max(1, static_cast<int>(std::ceil(*quota)));
    budget.reason += ", cgroup quota: " + cpus_text(*quota);
  }
  if (omp_num_threads != nullptr && *omp_num_threads != '\0')
    budget.reason += " (OMP_NUM_THREADS='" + std::string(omp_num_threads) + "' is not a thread count; ignored)";
  return budget;
}

const CpuBudget& cpu_budget() {
  static const CpuBudget budget = cpu_budget_from(std::getenv("OMP_NUM_THREADS"), affinity_cpus(), cgroup_quota_cpus(),
                                                  static_cast<int>(std::thread::hardware_concurrency()));
  return budget;
}

}  // namespace ssld::host
