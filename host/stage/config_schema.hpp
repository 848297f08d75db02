// The shape of a config file: the host's own tables ([run], [plugins]) with their schemas,
// and the component slots ([student], [teacher], [[loss]]) whose `type` names a registered
// component. Every top-level key is one of these; anything else is an error.
#pragma once

#include "config/diagnostics.hpp"
#include "config/toml_value.hpp"

#include <ssld/component.hpp>
#include <ssld/options.hpp>

#include <string>
#include <vector>

namespace ssld::host {

struct HostTable {
  std::string key;
  std::string doc;
  Schema schema;
};

struct ComponentSlot {
  std::string key;
  Kind kind;
  bool list;          // [[loss]]: an array of tables
  Schema host_schema;  // keys the host reads itself beside `type` (a loss's weight)
  std::string doc;
};

const std::vector<HostTable>& host_tables();
const std::vector<ComponentSlot>& component_slots();

// A [student] table without the host's keys (the student slot's weights, strict, ignore,
// init_from, and init_which): only the architecture, as a checkpoint teacher or an export builds it.
void strip_student_host_keys(TomlTable& student);

// The validated [run] table.
// The defaults here are [run]'s defaults (config_schema.cpp's table documents each key).
struct RunSettings {
  std::string name = "run";
  int64_t seed = 0;
  std::string device = "auto";  // "auto", "cpu", "cuda" or "cuda:N"
  std::string output_dir = "runs";
  int64_t threads = 0;  // libtorch intra-op threads; 0: one per core
};

// Checks every top-level key and the host tables; component tables are checked by the
// ComponentFactory once plugins are loaded.
void validate_host_tables(const TomlValue& root, Diagnostics& diagnostics);

// Reads [run] (defaults where absent); call after validate_host_tables found no problem.
RunSettings read_run_settings(const TomlValue& root);

// [plugins] paths, resolved against the config file, read before validation so that the
// plugins they name can take part in it. Malformed values are left for validation to report.
std::vector<std::string> config_plugin_paths(const TomlValue& root);

}  // namespace ssld::host
