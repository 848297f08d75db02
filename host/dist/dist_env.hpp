// Where this process stands in a multi-process run: rank, world size, local rank and the
// rendezvous address, read from the variables torchrun (and a scheduler script) sets: RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. None set: a single process, as always.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace ssld::host {

struct DistEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;  // picks the GPU on a node: cuda:LOCAL_RANK
  std::string master_addr;
  int master_port = 0;

  bool is_main() const { return rank == 0; }
};

// Reads the variables through `lookup` (the process environment by default). Returns nullopt
// when none of them is set; throws ssld::Error naming the variable for a partial or invalid set
// (RANK without WORLD_SIZE, RANK >= WORLD_SIZE, a port that is not a number, ...).
std::optional<DistEnv> read_dist_env(const std::function<std::optional<std::string>(const std::string&)>& lookup = {});

}  // namespace ssld::host
