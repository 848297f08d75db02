#include "cli/command_setup.hpp"

#include "components/device.hpp"
#include "config/config_loader.hpp"
#include "core/cpu_budget.hpp"
#include "dist/local_launch.hpp"
#include "stage/stage_plan.hpp"

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <thread>

#include <malloc.h>

namespace ssld::host {

// glibc hands blocks above 128 KiB to mmap and trims the heap top on free, so every step's
// activations came back as fresh pages: perf showed ~26% of a CPU training step in page faults,
// and the demo's SSLD stage ran 3x faster (620 -> 1850 img/s) with freed memory kept. Blocks up
// to 32 MiB (glibc's largest mmap threshold) now come from the heap, which keeps up to 1 GiB
// free for reuse. A user's own MALLOC_* variables or GLIBC_TUNABLES win.
void keep_freed_memory_for_reuse() {
  for (const char* name : {"GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"})
    if (std::getenv(name)) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

std::unique_ptr<CommandSetup> set_up_command(const std::string& config, const std::vector<std::string>& overrides,
                                             Diagnostics& diagnostics) {
  auto setup = std::make_unique<CommandSetup>();
  keep_freed_memory_for_reuse();
  setup->root = load_config(config, overrides);
  setup->plugins.load_search_path(config_plugin_paths(setup->root));

  const size_t before = diagnostics.items().size();
  validate_host_tables(setup->root, diagnostics);
  setup->run = diagnostics.items().size() == before ? read_run_settings(setup->root) : RunSettings{"run", 0, "cpu", "runs", 0};
  // Set explicitly: left alone, this libtorch ran its CPU kernels on one thread here (4x slower
  // on 2 cores). The default is the process's CPU budget, not the machine's core count.
  const CpuBudget& budget = cpu_budget();
  const int threads = static_cast<int>(setup->run.threads > 0 ? setup->run.threads : budget.threads);
  at::set_num_threads(threads);
  setup->threads_reason = setup->run.threads > 0 ? std::string("[run] threads") : budget.reason;
  spdlog::debug("compute threads: {} ({})", threads, setup->threads_reason);
  try {
    setup->device = resolve_device(setup->run.device);
  } catch (const Error& error) {
    diagnostics.add(SourcePlace::of(setup->root.at("run").at("device")), error.what());
  }
  setup->factory = std::make_unique<ComponentFactory>(setup->registry, setup->device, static_cast<uint64_t>(setup->run.seed));
  return setup;
}

std::optional<DistEnv> join_multi_process_run(CommandSetup& setup) {
  std::optional<DistEnv> env = read_dist_env();
  if (!env || env->world_size <= 1) return std::nullopt;
  if (setup.device.is_cuda()) {
    setup.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env->local_rank));
    setup.factory = std::make_unique<ComponentFactory>(setup.registry, setup.device, static_cast<uint64_t>(setup.run.seed));
  }
  return env;
}

int run_as_local_ranks(const std::string& config, const std::vector<std::string>& overrides, int ranks, int argc,
                       char** argv) {
  const RunSettings run = read_run_settings(load_config(config, overrides));
  return run_local_ranks(ranks, without_nproc_flag(argc, argv), run_folder(run) / "ranks");
}

}  // namespace ssld::host
