// The host's one TOML representation: toml11 values with sorted tables (deterministic output)
// and their source locations, which every config diagnostic quotes.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <toml.hpp>

namespace ssld::host {

using TomlValue = toml::basic_value<toml::discard_comments, std::map, std::vector>;
using TomlTable = TomlValue::table_type;

// Where a value was written: "configs/demo.toml:12:9", or "--set" for a command-line override.
struct SourcePlace {
  std::string file;
  int line = 0;
  int column = 0;

  std::string str() const;
  static SourcePlace of(const TomlValue& value);
};

// Human name of a TOML value's type for messages ("string", "integer", "table", ...).
std::string toml_type_name(const TomlValue& value);

}  // namespace ssld::host
