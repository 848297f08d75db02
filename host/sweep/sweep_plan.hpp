// A sweep's plan: the config's [sweep] table (axes over config key paths, seeds, grid or zip)
// expanded into runs, each with a stable id and its own resolved config. Pure functions of the
// loaded config: no processes, no files, so the expansion is unit-tested on its own.
#pragma once

#include "config/toml_value.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ssld::host {

// One axis: a dotted key path into the config ("loss.0.type", "stage.2.train.lr", "teacher")
// and the values it takes, in the order written.
struct SweepAxis {
  std::string key;
  std::vector<TomlValue> values;
  SourcePlace place;  // where the list was written, for messages
  // One name per value for listings, tables and plots: [sweep.labels], or the value's short
  // text, numbered ("[idx,idx]#2") where two different values would read alike.
  std::vector<std::string> labels;
};

struct SweepSpec {
  std::string mode = "grid";   // grid: cartesian product; zip: the i-th value of every axis together
  std::vector<int64_t> seeds;  // empty: every run keeps [run] seed
  std::vector<SweepAxis> axes;  // sorted by key (TOML tables are), so the expansion is canonical
};

struct AxisValue {
  std::string key;
  TomlValue value;
  std::string label;  // the axis's name for the value (ids use the value itself, so they never change)
};

struct SweepRun {
  std::string id;                     // "<slug>-<8 hex>": readable, and unique per assignment + seed
  std::vector<AxisValue> assignment;  // one value per axis, in axis order
  std::optional<int64_t> seed;        // set when the sweep lists seeds
};

// Reads and checks [sweep]; throws ConfigError (file:line) for a missing or malformed table, an
// empty axis, axes of different lengths in zip mode, or [sweep.labels] that do not name each
// value of an axis once.
SweepSpec read_sweep_spec(const TomlValue& root);

// Every run of the sweep, in a deterministic order: axes vary last-axis-fastest, then seeds.
std::vector<SweepRun> expand_sweep(const SweepSpec& spec);

// The id of an assignment: a slug of "key=value" pairs (and "seed=N"), then an 8-hex FNV-1a hash
// of the canonical text of the whole assignment, so equal assignments always get equal ids and
// a long or lossy slug never makes two runs collide.
std::string sweep_run_id(const std::vector<AxisValue>& assignment, std::optional<int64_t> seed);

// Short text of an axis value for ids and tables: a string as is, a number or bool as TOML writes
// it, a table by its `type` (or "table"), a list as "[...]" of those.
std::string axis_value_text(const TomlValue& value);

// Sets `value` at the dotted `key` path of `root` (numeric segments index arrays); a table value
// replaces the table whole. Throws ConfigError at `place` when the path does not resolve: an
// unknown top-level key, an index out of range, or a path through a value that is not a table.
void set_config_value(TomlValue& root, const std::string& key, const TomlValue& value, const SourcePlace& place);

// The run's config: `root` without its [sweep] table, with the run's axis values and seed set.
// Throws ConfigError when an axis key does not resolve or a host table no longer validates.
TomlValue sweep_run_config(const TomlValue& root, const SweepSpec& spec, const SweepRun& run);

}  // namespace ssld::host
