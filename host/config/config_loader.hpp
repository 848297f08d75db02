// Reads a run's config: a TOML file, the files it inherits through `base = "..."` (relative to
// the including file, merged table by table, the including file winning), then the
// command line's `--set key.path=value` overrides on top.
#pragma once

#include "config/toml_value.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace ssld::host {

// Throws ConfigError for a missing file, malformed TOML (file:line:column), a `base` cycle or
// a malformed override. The result has no `base` key left.
TomlValue load_config(const std::filesystem::path& path, const std::vector<std::string>& overrides = {});

// TOML text from elsewhere (a checkpoint's config, an override) parsed as a config file would be:
// its nesting bounded first. Throws ConfigError or toml::syntax_error.
TomlValue parse_config_text(const std::string& text, const std::string& name);

// Merges `overlay` into `base`: tables key by key, the overlay winning; anything else (arrays
// of tables too) is replaced whole. What `base = ...` and stages do.
void merge_config(TomlValue& base, const TomlValue& overlay);

// Applies one "key.path=value" override. Numeric path segments index arrays ("loss.0.type").
// The value is kept as text until validation, which reads it as the type the schema declares.
void apply_override(TomlValue& root, const std::string& assignment);

// True for a value that came from --set and still holds its raw text.
bool is_override_text(const TomlValue& value);

// Reads an override's raw text as a TOML value ("64" -> integer, "[1, 2]" -> array); returns
// false when the text is not a TOML value.
bool parse_override_text(const TomlValue& value, TomlValue& parsed);

// Makes `value` mean the same in a file written elsewhere: --set texts become the TOML values
// they spell, and relative paths become absolute. Which strings are paths is known only to
// the plugins' schemas, so the strings written as paths are recognized: "./x", "../x", or a
// name (with a '/' or a '.') of something that exists beside the file that wrote it. Used for
// a sweep's run configs and for the teacher cache's key.
void make_location_independent(TomlValue& value);

}  // namespace ssld::host
