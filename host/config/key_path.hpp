// Dotted key paths into a config ("student.width", "loss.0.type"), the one walker behind
// `--set` and sweep axes: numeric parts index lists, missing tables are created (left to their
// defaults), missing list entries are not. Each caller words its errors with its own prefix.
#pragma once

#include "config/toml_value.hpp"

#include <string>
#include <vector>

namespace ssld::host {

// Whether a key-path part indexes a list ("0", "12").
bool is_list_index(const std::string& part);

// The parts of `path`; an empty path or an empty part is a ConfigError at `place`: `prefix`
// then "malformed key path '...'" and `example`.
std::vector<std::string> split_key_path(const std::string& path, const SourcePlace& place, const std::string& prefix);

struct KeyPathWalk {
  bool allow_list_entry = true;  // may the path end on a list entry ("teacher.members.1")
  std::string prefix;            // begins every error message
};

// The value at `parts` in `root`, created (as an empty table) where the path ends on a missing
// table key; throws ConfigError at `place` when the path does not resolve.
TomlValue& value_at_key_path(TomlValue& root, const std::vector<std::string>& parts, const SourcePlace& place,
                             const KeyPathWalk& walk);

}  // namespace ssld::host
