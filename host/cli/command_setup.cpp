#include "cli/command_setup.hpp"

#include "components/device.hpp"
#include "config/config_loader.hpp"

#include <ATen/Parallel.h>

#include <thread>

namespace ssld::host {

std::unique_ptr<CommandSetup> set_up_command(const std::string& config, const std::vector<std::string>& overrides,
                                             Diagnostics& diagnostics) {
  auto setup = std::make_unique<CommandSetup>();
  setup->root = load_config(config, overrides);
  setup->plugins.load_search_path(config_plugin_paths(setup->root));

  const size_t before = diagnostics.items().size();
  validate_host_tables(setup->root, diagnostics);
  setup->run = diagnostics.items().size() == before ? read_run_settings(setup->root) : RunSettings{"run", 0, "cpu", "runs", 0};
  // Set explicitly: left alone, this libtorch ran its CPU kernels on one thread here (4x slower
  // on 2 cores).
  const int64_t cores = static_cast<int64_t>(std::thread::hardware_concurrency());
  at::set_num_threads(static_cast<int>(setup->run.threads > 0 ? setup->run.threads : std::max<int64_t>(1, cores)));
  try {
    setup->device = resolve_device(setup->run.device);
  } catch (const Error& error) {
    diagnostics.add(SourcePlace::of(setup->root.at("run").at("device")), error.what());
  }
  setup->factory = std::make_unique<ComponentFactory>(setup->registry, setup->device, static_cast<uint64_t>(setup->run.seed));
  return setup;
}

void use_local_rank_device(CommandSetup& setup, int64_t local_rank) {
  if (!setup.device.is_cuda()) return;
  setup.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
  setup.factory = std::make_unique<ComponentFactory>(setup.registry, setup.device, static_cast<uint64_t>(setup.run.seed));
}

}  // namespace ssld::host
