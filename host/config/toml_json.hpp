// TOML values as JSON: for manifests and the teacher cache's keys.
#pragma once

#include "config/toml_value.hpp"

#include <nlohmann/json.hpp>

namespace ssld::host {

// A TOML value as JSON (dates and times as their TOML text).
nlohmann::json toml_to_json(const TomlValue& value);

}  // namespace ssld::host
