#include "core/json_differences.hpp"

namespace ssld::host {

std::vector<std::string> json_differences(const nlohmann::json& there, const nlohmann::json& here,
                                          const std::string& prefix) {
  std::vector<std::string> lines;
  if (there.is_object() && here.is_object()) {
    std::vector<std::string> keys;
    for (const auto& [key, value] : there.items()) keys.push_back(key);
    for (const auto& [key, value] : here.items())
      if (!there.contains(key)) keys.push_back(key);
    for (const auto& key : keys) {
      const std::string path = prefix.empty() ? key : prefix + "." + key;
      const nlohmann::json a = there.contains(key) ? there.at(key) : nlohmann::json("(absent)");
      const nlohmann::json b = here.contains(key) ? here.at(key) : nlohmann::json("(absent)");
      for (auto& line : json_differences(a, b, path)) lines.push_back(std::move(line));
    }
    return lines;
  }
  if (there != here) lines.push_back((prefix.empty() ? "(key)" : prefix) + ": " + there.dump() + " there, " + here.dump() + " here");
  return lines;
}

}  // namespace ssld::host
