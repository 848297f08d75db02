#include "config/toml_json.hpp"

namespace ssld::host {

nlohmann::json toml_to_json(const TomlValue& value) {
  if (value.is_boolean()) return value.as_boolean();
  if (value.is_integer()) return value.as_integer();
  if (value.is_floating()) return value.as_floating();
  if (value.is_string()) return value.as_string().str;
  if (value.is_array()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& item : value.as_array()) list.push_back(toml_to_json(item));
    return list;
  }
  if (value.is_table()) {
    nlohmann::json object = nlohmann::json::object();
    for (const auto& [key, item] : value.as_table()) object[key] = toml_to_json(item);
    return object;
  }
  return toml::format(value);  // local or offset dates and times
}

}  // namespace ssld::host
