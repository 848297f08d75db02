#include "dist/dist_env.hpp"

#include <ssld/error.hpp>

#include <cstdlib>
#include <vector>

namespace ssld::host {

namespace {

std::optional<std::string> from_environment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

int64_t parse_integer(const std::string& name, const std::string& text, int64_t low, int64_t high) {
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || used == 0 || value < low || value > high)
    throw Error("environment variable " + name + "='" + text + "' is not an integer in [" + std::to_string(low) + ", " +
                std::to_string(high) + "]");
  return value;
}

}  // namespace

std::optional<DistEnv> read_dist_env(const std::function<std::optional<std::string>(const std::string&)>& lookup_or_null) {
  const auto lookup = lookup_or_null ? lookup_or_null : from_environment;
  static const std::vector<std::string> names = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"};
  std::vector<std::string> set, missing;
  for (const auto& name : names) (lookup(name) ? set : missing).push_back(name);
  if (set.empty()) return std::nullopt;
  // LOCAL_RANK alone is allowed to be missing (defaults to RANK, one node); the rest are needed.
  std::string missing_required;
  for (const auto& name : missing)
    if (name != "LOCAL_RANK") missing_required += (missing_required.empty() ? "" : ", ") + name;
  if (!missing_required.empty())
    throw Error("multi-process launch: " + missing_required + " not set (found only some of RANK, WORLD_SIZE, "
                "LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Launch with torchrun --no-python, or set all of them "
                "(docs/distributed.md); unset them all for a single process");
  DistEnv env;
  env.world_size = parse_integer("WORLD_SIZE", *lookup("WORLD_SIZE"), 1, 1 << 20);
  env.rank = parse_integer("RANK", *lookup("RANK"), 0, env.world_size - 1);
  env.local_rank = lookup("LOCAL_RANK") ? parse_integer("LOCAL_RANK", *lookup("LOCAL_RANK"), 0, 1 << 20) : env.rank;
  env.master_addr = *lookup("MASTER_ADDR");
  env.master_port = static_cast<int>(parse_integer("MASTER_PORT", *lookup("MASTER_PORT"), 1, 65535));
  return env;
}

}  // namespace ssld::host
