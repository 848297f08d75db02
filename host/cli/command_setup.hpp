// What every config-driven subcommand does first: load the config (bases, --set), load the
// plugins it names, validate the host's tables and read [run], and resolve the device.
#pragma once

#include "components/component_factory.hpp"
#include "config/diagnostics.hpp"
#include "data/data_config.hpp"
#include "dist/dist_env.hpp"
#include "plugin/component_registry.hpp"
#include "plugin/plugin_loader.hpp"
#include "stage/config_schema.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ssld::host {

struct CommandSetup {
  TomlValue root;
  ComponentRegistry registry;
  PluginLoader plugins{registry};
  RunSettings run;
  c10::Device device{c10::kCPU};
  std::unique_ptr<ComponentFactory> factory;
  std::string threads_reason;  // why libtorch got its thread count ("[run] threads", the CPU budget's reason)
};

// Keeps freed blocks up to 32 MiB in the heap for reuse (glibc would return them to the kernel,
// and every step's tensors would come back as fresh pages); set_up_command calls it first.
void keep_freed_memory_for_reuse();

// Throws ConfigError / PluginError for what stops everything (unreadable config, broken
// plugin); problems in [run] and friends go to `diagnostics`, with a usable setup still
// returned (CPU, seed 0) so the caller can keep checking and report them all at once.
std::unique_ptr<CommandSetup> set_up_command(const std::string& config, const std::vector<std::string>& overrides,
                                             Diagnostics& diagnostics);

// Under torchrun's variables with WORLD_SIZE > 1: this process's rank, after pointing `setup` at
// the GPU of its local rank (cuda:LOCAL_RANK) when the config's device is CUDA, so components
// are built there. nullopt (and `setup` untouched) for a single process.
std::optional<DistEnv> join_multi_process_run(CommandSetup& setup);

// The share of the data a process reads: its rank's shard under torchrun, all of it otherwise.
inline Sharding sharding_of(const std::optional<DistEnv>& env) {
  return env ? Sharding{env->rank, env->world_size} : Sharding{};
}

// `--nproc-per-node N`: runs this command line again as N local ranks (dist/local_launch.hpp),
// their logs in <run folder>/ranks/; returns the launcher's exit status.
int run_as_local_ranks(const std::string& config, const std::vector<std::string>& overrides, int ranks, int argc,
                       char** argv);

}  // namespace ssld::host
