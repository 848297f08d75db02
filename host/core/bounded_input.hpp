// Reading bytes ssld did not write (or wrote before a crash) without trusting them: a file must
// be a regular file no larger than its kind allows before it is read, and JSON nests no deeper
// than a bound before any recursive algorithm walks it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace ssld::host {

// The nesting that ssld's own JSON files and safetensors headers need, with room to spare.
constexpr int kMaxJsonDepth = 64;

// The whole file; throws ssld::Error naming `what` and the path when it is missing, not a
// regular file (a folder, /dev/zero, a FIFO) or larger than `max_bytes`.
std::string read_regular_file(const std::filesystem::path& path, uint64_t max_bytes, const std::string& what);

// Parses JSON; throws ssld::Error "<what>: ..." when malformed or nested deeper than kMaxJsonDepth.
nlohmann::json parse_json(std::string_view text, const std::string& what);

// A JSON integer read back from a file: nlohmann's get<int64_t>() casts a float like 1e28
// (undefined behaviour, found by the mine_state fuzz target); these throw ssld::Error instead.
int64_t json_int(const nlohmann::json& value);
uint64_t json_uint(const nlohmann::json& value);

// A JSON file ssld wrote (a state, a manifest, a summary, a cache key), at most 256 MiB.
nlohmann::json read_json_file(const std::filesystem::path& path, const std::string& what);

}  // namespace ssld::host
